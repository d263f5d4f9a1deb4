# The C module behind `signal`: km imports it directly to keep `enum` off its start-up path.
from collections.abc import Callable
from types import FrameType

SIGHUP: int
SIGINT: int
SIGKILL: int
SIGPIPE: int
SIGTERM: int
SIGCHLD: int
SIGXFSZ: int
SIG_DFL: int
SIG_IGN: int

_Handler = Callable[[int, FrameType | None], object] | int

def signal(signalnum: int, handler: _Handler, /) -> _Handler | None: ...
def set_wakeup_fd(fd: int, /, *, warn_on_full_buffer: bool = ...) -> int: ...
