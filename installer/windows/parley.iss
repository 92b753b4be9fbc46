; Inno Setup 6 script: the Windows installer of Parley.
;
; installer\build-windows.ps1 builds the PyInstaller bundle (build\dist\parley: parley.exe,
; parley-cli.exe, parley-server.exe and _internal\) and then runs
;   ISCC.exe /DAppVersion=0.1.0 /DBundleDir=...\build\dist\parley /DOutputDir=...\dist
;        /DIconFile=...\build\parley.ico installer\windows\parley.iss
; which writes dist\parley-<version>-windows-x64-setup.exe.
;
; The installer: per-user by default (no administrator needed; "Install for all users" is
; offered), a Start-menu entry, an optional desktop icon, an optional PATH entry for
; parley-cli and parley-server, and an uninstaller (Settings > Apps, or the Start menu).
; Silent use: setup.exe /VERYSILENT /SUPPRESSMSGBOXES /CURRENTUSER [/DIR=folder] [/TASKS=addtopath]
; and "{app}\unins000.exe" /VERYSILENT to remove it.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef BundleDir
  #define BundleDir "..\..\build\dist\parley"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
; The AppId identifies Parley for upgrades and the uninstaller: never change it.
AppId={{21722D61-DF65-43C7-AB8B-25E057630DA0}
AppName=Parley
AppVersion={#AppVersion}
AppVerName=Parley {#AppVersion}
AppPublisher=The Parley developers
AppComments=Video calls, screen sharing and chat with your contacts
DefaultDirName={autopf}\Parley
DefaultGroupName=Parley
DisableProgramGroupPage=yes
UninstallDisplayName=Parley
UninstallDisplayIcon={app}\parley.exe
LicenseFile=..\..\LICENSE
OutputDir={#OutputDir}
OutputBaseFilename=parley-{#AppVersion}-windows-x64-setup
#ifdef IconFile
SetupIconFile={#IconFile}
#endif
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ChangesEnvironment=yes
CloseApplications=yes
WizardStyle=modern
VersionInfoVersion={#AppVersion}
VersionInfoProductName=Parley

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add parley-cli and parley-server to the PATH"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
; The whole bundle; the licence texts are in {app}\_internal\licenses.
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\..\LICENSE"; DestDir: "{app}"; DestName: "LICENSE.txt"; Flags: ignoreversion

[Icons]
Name: "{group}\Parley"; Filename: "{app}\parley.exe"; AppUserModelID: "org.parley.Parley"; Comment: "Video calls and chat"
Name: "{group}\Third-party licences"; Filename: "{app}\_internal\licenses"
Name: "{group}\Uninstall Parley"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Parley"; Filename: "{app}\parley.exe"; AppUserModelID: "org.parley.Parley"; Tasks: desktopicon

[Run]
Filename: "{app}\parley.exe"; Description: "{cm:LaunchProgram,Parley}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Python's bytecode caches; settings and sign-in stay in the user's profile.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
{ The PATH entry: the user's PATH for a per-user install, the system's for all users. }
const
  UserEnvironment = 'Environment';
  SystemEnvironment = 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment';

function EnvironmentRoot: Integer;
begin
  if IsAdminInstallMode then
    Result := HKEY_LOCAL_MACHINE
  else
    Result := HKEY_CURRENT_USER;
end;

function EnvironmentKey: String;
begin
  if IsAdminInstallMode then
    Result := SystemEnvironment
  else
    Result := UserEnvironment;
end;

function PathContains(Path, Folder: String): Boolean;
begin
  Result := Pos(';' + Uppercase(Folder) + ';', ';' + Uppercase(Path) + ';') > 0;
end;

procedure AddToPath(Folder: String);
var
  Path: String;
begin
  if not RegQueryStringValue(EnvironmentRoot, EnvironmentKey, 'Path', Path) then
    Path := '';
  if PathContains(Path, Folder) then
    exit;
  if (Path <> '') and (Copy(Path, Length(Path), 1) <> ';') then
    Path := Path + ';';
  RegWriteExpandStringValue(EnvironmentRoot, EnvironmentKey, 'Path', Path + Folder);
end;

procedure RemoveFromPath(Folder: String);
var
  Path: String;
  Padded: String;
begin
  if not RegQueryStringValue(EnvironmentRoot, EnvironmentKey, 'Path', Path) then
    exit;
  if not PathContains(Path, Folder) then
    exit;
  Padded := ';' + Path + ';';
  StringChangeEx(Padded, ';' + Folder + ';', ';', True);
  Path := Copy(Padded, 2, Length(Padded) - 2);
  RegWriteExpandStringValue(EnvironmentRoot, EnvironmentKey, 'Path', Path);
end;

procedure CurStepChanged(CurStep: TSetupStep);
begin
  if (CurStep = ssPostInstall) and WizardIsTaskSelected('addtopath') then
    AddToPath(ExpandConstant('{app}'));
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
end;
