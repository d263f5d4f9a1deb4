# Homebrew formula template for km. After a release, fill VERSION and the four SHA256 values
# from the release's SHA256SUMS (the archives are km-VERSION-darwin-*.tar.gz and
# km-VERSION-linux-*.tar.gz), and commit it to the tap (kilometers-ai/homebrew-tap).
class Km < Formula
  desc "See every message between your AI client and its MCP servers"
  homepage "https://github.com/kilometers-ai/km"
  version "VERSION"
  license "Apache-2.0"

  on_macos do
    on_arm do
      url "https://github.com/kilometers-ai/km/releases/download/v#{version}/km-#{version}-darwin-arm64.tar.gz"
      sha256 "SHA256_DARWIN_ARM64"
    end
    on_intel do
      url "https://github.com/kilometers-ai/km/releases/download/v#{version}/km-#{version}-darwin-amd64.tar.gz"
      sha256 "SHA256_DARWIN_AMD64"
    end
  end
  on_linux do
    on_arm do
      url "https://github.com/kilometers-ai/km/releases/download/v#{version}/km-#{version}-linux-arm64.tar.gz"
      sha256 "SHA256_LINUX_ARM64"
    end
    on_intel do
      url "https://github.com/kilometers-ai/km/releases/download/v#{version}/km-#{version}-linux-amd64.tar.gz"
      sha256 "SHA256_LINUX_AMD64"
    end
  end

  def install
    # The one-directory build: km next to its _internal/ libraries, linked into bin.
    libexec.install Dir["*"]
    bin.install_symlink libexec/"km"
  end

  test do
    assert_equal "km #{version}", shell_output("#{bin}/km --version").strip
    assert_match '"id":1', pipe_output("#{bin}/km --no-capture cat", "{\"jsonrpc\":\"2.0\",\"id\":1}\n")
  end
end
