// Electron Forge configuration. The desktop app issue fills this in (makers
// for dmg/zip, squirrel and deb; the guest image as an extra resource). The
// engine never depends on it.
const config = {
  packagerConfig: {},
  rebuildConfig: { onlyModules: [] as string[] },
  makers: [] as unknown[],
};

export default config;
