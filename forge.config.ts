// Electron Forge: packaging and installers (macOS dmg + zip, Windows
// Squirrel, Linux deb). Main, preload and renderer are built by Vite
// beforehand (`npm run build`); Forge only packages dist/ with the CLI
// that runs the engine. `forge package/make` need the Electron binary.
import path from 'node:path';
import { MakerDeb } from '@electron-forge/maker-deb';
import { MakerDMG } from '@electron-forge/maker-dmg';
import { MakerSquirrel } from '@electron-forge/maker-squirrel';
import { MakerZIP } from '@electron-forge/maker-zip';
import { FusesPlugin } from '@electron-forge/plugin-fuses';
import type { ForgeConfig } from '@electron-forge/shared-types';
import { FuseV1Options, FuseVersion } from '@electron/fuses';

/**
 * The guest image (kernel, initramfs, root file system and manifest) goes
 * along as an extra resource: a release never builds it on the user's Mac.
 * `npm run image` builds it into the cache; point this at that folder.
 */
const guestImage = process.env.BERTH_GUEST_IMAGE_DIR;
const extraResource = [path.resolve('app/main/icons'), ...(guestImage ? [path.resolve(guestImage)] : [])];

const config: ForgeConfig = {
  packagerConfig: {
    name: 'Berth',
    executableName: 'berth-desktop',
    appBundleId: 'dev.berth.desktop',
    asar: { unpack: '**/*.node' },
    extraResource,
    // Only what runs: the built app, the CLI entry and the runtime dependencies.
    ignore: [
      /^\/(app|test|bench|scripts|vm-images|test-artifacts|\.ci)(\/|$)/,
      /^\/dist\/(test|bench)(\/|$)/,
      /\.map$/,
      /^\/forge\.config\.ts$/,
      /^\/tsconfig.*\.json$/,
    ],
  },
  // Electron's headers cannot be downloaded everywhere, and no module needs a rebuild.
  rebuildConfig: { onlyModules: [] },
  makers: [
    new MakerDMG({ format: 'ULFO' }, ['darwin']),
    new MakerZIP({}, ['darwin', 'linux']),
    new MakerSquirrel({ name: 'Berth' }, ['win32']),
    new MakerDeb({ options: { name: 'berth-desktop', productName: 'Berth', categories: ['Development'], maintainer: 'Berth' } }, ['linux']),
  ],
  plugins: [
    new FusesPlugin({
      version: FuseVersion.V1,
      // The engine runs as `Berth --run-as-node bin/berth.js daemon` (ELECTRON_RUN_AS_NODE): this fuse must stay on.
      [FuseV1Options.RunAsNode]: true,
      [FuseV1Options.EnableCookieEncryption]: true,
      [FuseV1Options.EnableNodeOptionsEnvironmentVariable]: false,
      [FuseV1Options.EnableNodeCliInspectArguments]: false,
      [FuseV1Options.EnableEmbeddedAsarIntegrityValidation]: true,
      [FuseV1Options.OnlyLoadAppFromAsar]: true,
      // The renderer is loaded from file:// as ES modules.
      [FuseV1Options.GrantFileProtocolExtraPrivileges]: true,
    }),
  ],
};

export default config;
