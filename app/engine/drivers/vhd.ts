import crypto from 'node:crypto';
import fs from 'node:fs';

/**
 * A fixed VHD is a raw disk image followed by a 512-byte footer
 * (Microsoft, "Virtual Hard Disk Image Format Specification" 1.0, "Hard
 * Disk Footer Format"). Hyper-V attaches only VHD/VHDX files, so the small
 * raw disks the engine writes itself (the config disk) become fixed VHDs
 * by appending a footer: the guest sees the same bytes. The data disk is
 * not made this way (a fixed disk is fully allocated on NTFS); Hyper-V
 * creates it as a dynamic VHDX (hyperv.ts).
 */

const FOOTER = 512;
/** Hyper-V wants virtual sizes in whole MiB for attached disks; pad to that. */
const ALIGN = 1024 * 1024;
/** Seconds from the Unix epoch to the VHD epoch, 2000-01-01 00:00:00 UTC. */
const VHD_EPOCH = 946_684_800;

/** CHS geometry for a size, by the specification's algorithm (appendix, "CHS Calculation"). */
export function vhdGeometry(sizeBytes: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let totalSectors = Math.floor(sizeBytes / 512);
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255;
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    heads = Math.floor((cylinderTimesHeads + 1023) / 1024);
    if (heads < 4) heads = 4;
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

/** The footer of a fixed VHD of `sizeBytes` (a multiple of 512). */
export function fixedVhdFooter(sizeBytes: number, opts: { uuid?: Buffer; now?: Date } = {}): Buffer {
  if (sizeBytes <= 0 || sizeBytes % 512 !== 0) throw new Error(`a VHD size must be a positive multiple of 512 (got ${sizeBytes})`);
  const f = Buffer.alloc(FOOTER);
  f.write('conectix', 0, 'ascii');
  f.writeUInt32BE(0x00000002, 8); // features: reserved bit, always set
  f.writeUInt32BE(0x00010000, 12); // file format version 1.0
  f.writeBigUInt64BE(0xffffffffffffffffn, 16); // data offset: none, fixed disk
  const secs = Math.floor((opts.now ?? new Date()).getTime() / 1000) - VHD_EPOCH;
  f.writeUInt32BE(Math.max(0, secs) >>> 0, 24);
  f.write('brth', 28, 'ascii'); // creator application
  f.writeUInt32BE(0x00010000, 32); // creator version
  f.write('Wi2k', 36, 'ascii'); // creator host OS: Windows
  f.writeBigUInt64BE(BigInt(sizeBytes), 40); // original size
  f.writeBigUInt64BE(BigInt(sizeBytes), 48); // current size
  const g = vhdGeometry(sizeBytes);
  f.writeUInt16BE(g.cylinders, 56);
  f.writeUInt8(g.heads, 58);
  f.writeUInt8(g.sectorsPerTrack, 59);
  f.writeUInt32BE(2, 60); // disk type: fixed
  (opts.uuid ?? crypto.randomBytes(16)).copy(f, 68, 0, 16);
  // saved state (byte 84) and the reserved rest stay zero
  let sum = 0;
  for (const b of f) sum += b;
  f.writeUInt32BE(~sum >>> 0, 64);
  return f;
}

/**
 * Write `raw` as the fixed VHD `vhd`: its bytes, zeros up to a whole MiB,
 * then the footer. Owner-only, as the raw file is.
 */
export function writeFixedVhd(raw: string, vhd: string): void {
  const data = fs.readFileSync(raw);
  const size = Math.max(ALIGN, Math.ceil(data.length / ALIGN) * ALIGN);
  const tmp = `${vhd}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, data, 0, data.length, 0);
    fs.writeSync(fd, fixedVhdFooter(size), 0, FOOTER, size);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, vhd);
}
