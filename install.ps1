# Install km, the MCP observability proxy, on Windows from its GitHub release: no Python, no admin.
#
#   irm https://github.com/kilometers-ai/km/releases/latest/download/install.ps1 | iex
#   .\install.ps1 [-Version X.Y.Z] [-Prefix DIR] [-Uninstall]
#
# Installs DIR\<version>\ (the self-contained build) with DIR = %LOCALAPPDATA%\Programs\km and
# puts that directory on the user's PATH, so MCP clients find km.exe itself (a .cmd shim is not
# found by clients that start servers without a shell). Re-running upgrades in place; -Uninstall
# removes what it installed. Environment: KM_VERSION, KM_INSTALL_PREFIX, KM_INSTALL_BASE_URL.
[CmdletBinding()]
param(
    [string]$Version = $env:KM_VERSION,
    [string]$Prefix = $env:KM_INSTALL_PREFIX,
    [switch]$Uninstall
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$RepoUrl = 'https://github.com/kilometers-ai/km'

function Say([string]$Message) { Write-Host "km install: $Message" }
function Ok([string]$Message) { Write-Host "km install: $Message" -ForegroundColor Green }
function Warn([string]$Message) { Write-Host "km install: warning: $Message" -ForegroundColor Yellow }
function Die([string]$Message) {
    [Console]::Error.WriteLine("km install: error: $Message")
    exit 1
}

if (-not $Prefix) { $Prefix = Join-Path $env:LOCALAPPDATA 'Programs\km' }
$Prefix = [IO.Path]::GetFullPath($Prefix)
if ($Version) { $Version = $Version.TrimStart('v') }

function Get-UserPath { [Environment]::GetEnvironmentVariable('Path', 'User') }
function Set-UserPath([string]$Value) { [Environment]::SetEnvironmentVariable('Path', $Value, 'User') }

if ($Uninstall) {
    if (-not (Test-Path $Prefix)) { Say "km is not installed in ${Prefix}: nothing to remove"; exit 0 }
    try { Remove-Item -Recurse -Force $Prefix } catch { Die "cannot remove ${Prefix}: $($_.Exception.Message)" }
    $parts = @((Get-UserPath) -split ';' | Where-Object { $_ -and -not $_.StartsWith("$Prefix\") })
    Set-UserPath ($parts -join ';')
    Ok "removed km from $Prefix (and from your PATH)"
    exit 0
}

$arch = $env:PROCESSOR_ARCHITECTURE
if ($env:PROCESSOR_ARCHITEW6432) { $arch = $env:PROCESSOR_ARCHITEW6432 }
$platform = switch ($arch) { 'AMD64' { 'windows-amd64' } default { $null } }
if (-not $platform) {
    # No build for this architecture (e.g. ARM64): the Python package instead.
    $spec = if ($Version) { "kilometers==$Version" } else { 'kilometers' }
    foreach ($tool in @(@('pipx', 'install', '--force', $spec), @('uv', 'tool', 'install', '--force', $spec))) {
        if (Get-Command $tool[0] -ErrorAction SilentlyContinue) {
            Warn "no prebuilt km for Windows/$arch; installing the Python package with $($tool[0])"
            & $tool[0] @($tool[1..($tool.Length - 1)])
            if ($LASTEXITCODE -ne 0) { Die "$($tool -join ' ') failed" }
            Ok "installed km with $($tool[0])"
            exit 0
        }
    }
    Die "no prebuilt km for Windows/${arch}: install Python 3.11+ and pipx, then run 'pipx install kilometers'"
}

if ($env:KM_INSTALL_BASE_URL) { $base = $env:KM_INSTALL_BASE_URL.TrimEnd('/') }
elseif ($Version) { $base = "$RepoUrl/releases/download/v$Version" }
else { $base = "$RepoUrl/releases/latest/download" }

$tmp = Join-Path ([IO.Path]::GetTempPath()) ("km-install-" + [Guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $tmp | Out-Null
$stage = $null
try {
    Say "downloading km $(if ($Version) { $Version } else { '(latest)' }) for $platform from $base"
    $sums = Join-Path $tmp 'SHA256SUMS'
    try { Invoke-WebRequest -UseBasicParsing -Uri "$base/SHA256SUMS" -OutFile $sums }
    catch { Die "cannot download $base/SHA256SUMS: $($_.Exception.Message)" }
    $entries = Get-Content $sums | ForEach-Object {
        $f = $_ -split '\s+', 2
        if ($f.Length -eq 2) { [pscustomobject]@{ Hash = $f[0].ToLower(); Name = $f[1].TrimStart('*') } }
    }
    if ($Version) { $entry = $entries | Where-Object { $_.Name -eq "km-$Version-$platform.zip" } | Select-Object -First 1 }
    else { $entry = $entries | Where-Object { $_.Name -like "km-*-$platform.zip" } | Select-Object -First 1 }
    if (-not $entry) { Die "the release at $base has no km $Version build for $platform" }
    $archive = $entry.Name
    $Version = $archive.Substring(3, $archive.Length - 3 - "-$platform.zip".Length)
    $zip = Join-Path $tmp $archive
    try { Invoke-WebRequest -UseBasicParsing -Uri "$base/$archive" -OutFile $zip }
    catch { Die "cannot download $base/${archive}: $($_.Exception.Message)" }
    $got = (Get-FileHash -Algorithm SHA256 $zip).Hash.ToLower()
    if ($got -ne $entry.Hash) { Die "checksum mismatch for $archive (got $got, SHA256SUMS says $($entry.Hash)): refusing to install" }
    Say "checksum verified ($got)"

    $unpacked = Join-Path $tmp 'x'
    Expand-Archive -Path $zip -DestinationPath $unpacked
    $top = Join-Path $unpacked "km-$Version-$platform"
    $exe = Join-Path $top 'km.exe'
    if (-not (Test-Path $exe)) { Die "$archive does not hold km-$Version-$platform\km.exe" }
    $said = (& $exe --version) -join ''
    if ($said -ne "km $Version") { Die "the downloaded km says '$said', expected 'km $Version'" }

    New-Item -ItemType Directory -Force -Path $Prefix | Out-Null
    $target = Join-Path $Prefix $Version
    $stage = Join-Path $Prefix ".new-$PID"
    Move-Item $top $stage
    if (Test-Path $target) {
        $old = Join-Path $Prefix ".old-$PID"
        Move-Item $target $old
        Move-Item $stage $target
        Remove-Item -Recurse -Force $old -ErrorAction SilentlyContinue
    } else {
        Move-Item $stage $target
    }
    $stage = $null
    Get-ChildItem $Prefix -Directory | Where-Object { $_.FullName -ne $target } |
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue
} finally {
    Remove-Item -Recurse -Force $tmp -ErrorAction SilentlyContinue
    if ($stage) { Remove-Item -Recurse -Force $stage -ErrorAction SilentlyContinue }
}

Ok "installed km $Version in $target"
# The user PATH: this version's directory instead of any earlier one.
$userPath = @((Get-UserPath) -split ';' | Where-Object { $_ })
if (-not ($userPath -contains $target)) {
    Set-UserPath ((@($userPath | Where-Object { -not $_.StartsWith("$Prefix\") }) + $target) -join ';')
    Warn "put $target on your user PATH: open a new terminal (and restart your MCP clients) to use km"
}
$env:Path = "$target;$env:Path"
Say "next: 'km setup' puts km in front of your MCP clients' servers ('km setup --undo' takes it out),"
Say "      'km doctor' checks it all"
