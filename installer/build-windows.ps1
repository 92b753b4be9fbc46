# Build Parley for Windows into dist\: parley-<version>-windows-x64-setup.exe (Inno Setup 6).
# The Windows counterpart of installer/build-linux, with the same spec (installer/parley.spec):
#   1. a build virtual environment (build\venv, Python 3.12 or 3.13) with the project's `build`
#      extra (PyInstaller, Pillow for the icon);
#   2. the PyInstaller bundle build\dist\parley (parley.exe windowed; parley-cli.exe and
#      parley-server.exe console programs; one shared _internal\ folder) and its self-test;
#   3. the installer, compiled with ISCC.exe (Inno Setup 6; installed with Chocolatey if missing).
# With -Check it then installs the setup silently into a temporary folder, runs the installed
# parley.exe --self-test and parley-cli.exe --version, and uninstalls it again (what CI does).
#
#   pwsh installer\build-windows.ps1 [-Python C:\Python312\python.exe] [-Check]
param(
    [string]$Python = "python",
    [switch]$Check
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest
$Root = Resolve-Path (Join-Path $PSScriptRoot "..")
Set-Location $Root
$Started = Get-Date

function Say([string]$Message) { Write-Host "build-windows: $Message" }

# Runs a program, waits for it (also a windowed one) and returns its exit code and output.
function Invoke-Waited([string]$Program, [string[]]$Arguments) {
    $out = New-TemporaryFile
    $err = New-TemporaryFile
    $process = Start-Process -FilePath $Program -ArgumentList $Arguments -Wait -PassThru `
        -NoNewWindow -RedirectStandardOutput $out -RedirectStandardError $err
    $text = (Get-Content -Raw $out) + (Get-Content -Raw $err)
    Remove-Item $out, $err
    return @{ Code = $process.ExitCode; Output = $text }
}

# 1. Build environment ------------------------------------------------------------------------
& $Python -c "import sys; sys.exit(sys.version_info[:2] not in ((3, 12), (3, 13)))"
if ($LASTEXITCODE -ne 0) { throw "Parley needs Python 3.12 or 3.13 to build (-Python path)" }
$Venv = Join-Path $Root "build\venv"
$Py = Join-Path $Venv "Scripts\python.exe"
if (-not (Test-Path $Py)) { & $Python -m venv $Venv }
& $Py -m pip install --quiet --upgrade pip
& $Py -m pip install --quiet ".[build]"
if ($LASTEXITCODE -ne 0) { throw "pip install failed" }
$Version = (& $Py -c "from signaling import __version__; print(__version__)").Trim()
Say "Parley $Version with $(& $Py --version)"

# 2. The bundle -------------------------------------------------------------------------------
& $Py resources\make_icons.py | Out-Null
$Png = "resources\icons\hicolor\256x256\apps\parley.png"
$Ico = Join-Path $Root "build\parley.ico"
& $Py -c "from PIL import Image; Image.open(r'$Png').save(r'$Ico', sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])"
$Step = Get-Date
& (Join-Path $Venv "Scripts\pyinstaller.exe") --noconfirm --clean --log-level WARN `
    --distpath build\dist --workpath build\pyinstaller installer\parley.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
$Bundle = Join-Path $Root "build\dist\parley"
foreach ($exe in "parley.exe", "parley-cli.exe", "parley-server.exe") {
    if (-not (Test-Path (Join-Path $Bundle $exe))) { throw "the bundle lacks $exe" }
}
$BundleMiB = [math]::Round(((Get-ChildItem -Recurse -File $Bundle | Measure-Object Length -Sum).Sum) / 1MB, 1)
Say "bundle built in $([int]((Get-Date) - $Step).TotalSeconds) s: $BundleMiB MiB"

$Result = Invoke-Waited (Join-Path $Bundle "parley.exe") @("--self-test")
Write-Host $Result.Output
if ($Result.Code -ne 0) { throw "the bundle's self-test failed" }

# 3. The installer ----------------------------------------------------------------------------
$Iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"
if (-not (Test-Path $Iscc)) {
    Say "installing Inno Setup with Chocolatey"
    choco install innosetup --yes --no-progress | Out-Null
}
$Dist = Join-Path $Root "dist"
New-Item -ItemType Directory -Force $Dist | Out-Null
& $Iscc /Q "/DAppVersion=$Version" "/DBundleDir=$Bundle" "/DOutputDir=$Dist" "/DIconFile=$Ico" `
    installer\windows\parley.iss
if ($LASTEXITCODE -ne 0) { throw "ISCC failed" }
$Setup = Join-Path $Dist "parley-$Version-windows-x64-setup.exe"
Say "${Setup}: $([math]::Round((Get-Item $Setup).Length / 1MB, 1)) MiB, built in $([int]((Get-Date) - $Started).TotalSeconds) s"

if (-not $Check) { exit 0 }

# 4. Install, run, uninstall (CI) -------------------------------------------------------------
$Target = Join-Path ([IO.Path]::GetTempPath()) "parley-install-check"
if (Test-Path $Target) { Remove-Item -Recurse -Force $Target }
$Install = Start-Process -FilePath $Setup -Wait -PassThru -ArgumentList @(
    "/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART", "/CURRENTUSER", "/DIR=`"$Target`"")
if ($Install.ExitCode -ne 0) { throw "the installer failed ($($Install.ExitCode))" }
$InstalledMiB = [math]::Round(((Get-ChildItem -Recurse -File $Target | Measure-Object Length -Sum).Sum) / 1MB, 1)
Say "installed into $Target ($InstalledMiB MiB)"
$Menu = Join-Path $env:APPDATA "Microsoft\Windows\Start Menu\Programs\Parley\Parley.lnk"
if (-not (Test-Path $Menu)) { throw "no Start-menu entry at $Menu" }

$Result = Invoke-Waited (Join-Path $Target "parley.exe") @("--self-test")
Write-Host $Result.Output
if ($Result.Code -ne 0) { throw "the installed app's self-test failed" }
$Result = Invoke-Waited (Join-Path $Target "parley-cli.exe") @("--version")
if ($Result.Output.Trim() -ne "parley-cli $Version") { throw "parley-cli --version: $($Result.Output)" }

$Uninstall = Start-Process -FilePath (Join-Path $Target "unins000.exe") -Wait -PassThru `
    -ArgumentList @("/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART")
if ($Uninstall.ExitCode -ne 0) { throw "the uninstaller failed ($($Uninstall.ExitCode))" }
Start-Sleep -Seconds 2   # the uninstaller removes itself after it exits
if (Test-Path (Join-Path $Target "parley.exe")) { throw "the uninstaller left parley.exe behind" }
if (Test-Path $Menu) { throw "the uninstaller left the Start-menu entry behind" }
Say "install, self-test and uninstall passed"
