import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BerthError } from '../../contract/errors.js';

/**
 * The `caCertificates` setting read: each entry a PEM file or a folder
 * whose *.pem, *.crt and *.cer files are read (not its subfolders), as
 * Docker Desktop and Rancher Desktop take corporate CAs. Every certificate
 * must parse; the bundle goes to the guest's dockerd on the config disk.
 * Read when the setting changes (so a bad one is refused and nothing is
 * saved) and again at every start (a file may have changed since).
 */

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?\r?\n-----END CERTIFICATE-----/g;
const CERT_FILE = /\.(pem|crt|cer)$/i;
/** Far above any real bundle (Mozilla's whole store is ~220 KiB). */
const MAX_BYTES = 4 * 1024 * 1024;

export interface CaBundle {
  /** Every certificate, PEM, one after another. */
  pem: string;
  /** Their subjects, for status and the log. */
  subjects: string[];
}

function refuse(message: string, hint: string): BerthError {
  return new BerthError('INVALID_SETTINGS', `caCertificates: ${message}`, hint);
}

function certsOf(file: string): { pem: string[]; subjects: string[] } {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (st.size > MAX_BYTES)
      throw refuse(`${file} is ${Math.round(st.size / 1024)} KiB, not a certificate file`, 'Give the PEM file of the CA certificate itself.');
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof BerthError) throw err;
    throw refuse(
      `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      'Give a PEM file this user can read, or remove it from caCertificates.',
    );
  }
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (!blocks.length) {
    throw refuse(
      `${file} has no PEM certificate (-----BEGIN CERTIFICATE-----)`,
      'Give the CA certificate in PEM form; a DER file converts with `openssl x509 -inform der -in CA.cer -out CA.pem`.',
    );
  }
  const subjects = blocks.map((b, i) => {
    try {
      const x = new crypto.X509Certificate(b);
      return x.subject.replace(/\n/g, ', ');
    } catch (err) {
      throw refuse(`certificate ${i + 1} in ${file} does not parse (${(err as Error).message})`, 'Export the CA certificate again in PEM form.');
    }
  });
  return { pem: blocks, subjects };
}

/** Every certificate of the entries, in order; throws INVALID_SETTINGS with a hint on the first that cannot be read. */
export function readCaCertificates(entries: readonly string[]): CaBundle {
  const pem: string[] = [];
  const subjects: string[] = [];
  for (const entry of entries) {
    let st: fs.Stats;
    try {
      st = fs.statSync(entry);
    } catch (err) {
      throw refuse(
        `${entry} does not exist or cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        'Give the path of a PEM file or a folder of them, or remove it from caCertificates.',
      );
    }
    let files = [entry];
    if (st.isDirectory()) {
      try {
        files = fs
          .readdirSync(entry, { withFileTypes: true })
          .filter((d) => CERT_FILE.test(d.name) && (d.isFile() || d.isSymbolicLink()))
          .map((d) => path.join(entry, d.name))
          .sort();
      } catch (err) {
        throw refuse(`cannot list ${entry} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'Give a folder this user can read.');
      }
      if (!files.length) throw refuse(`${entry} has no .pem, .crt or .cer file`, 'Put the CA certificates there in PEM form, or name the file itself.');
    }
    for (const f of files) {
      const c = certsOf(f);
      pem.push(...c.pem);
      subjects.push(...c.subjects);
    }
  }
  return { pem: pem.length ? pem.join('\n') + '\n' : '', subjects };
}
