/**
 * Every failure a user can meet has a code, a one-line message and a hint.
 * The code is stable (scripts and the UI match on it); message and hint are
 * for people. Nothing else is thrown across the contract.
 */
export const ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHORIZED',
  'PROTOCOL_MISMATCH',
  'INVALID_SETTINGS',
  'SETTINGS_FILE_CORRUPT',
  'SETTINGS_FILE_UNREADABLE',
  'INVALID_INSTANCE_NAME',
  'ENGINE_NOT_RUNNING',
  'ENGINE_START_FAILED',
  'INSTANCE_LOCKED',
  'VM_BUSY',
  'VM_NOT_RUNNING',
  'VM_EXITED',
  'QEMU_MISSING',
  'QEMU_FAILED',
  'KVM_UNUSABLE',
  'ACCEL_UNAVAILABLE',
  'IMAGE_MISSING',
  'IMAGE_CHECKSUM',
  'IMAGE_WRONG_ARCH',
  'IMAGE_BUILD_FAILED',
  'IMAGE_BUILD_NEEDS_ROOT',
  'GUEST_TIMEOUT',
  'GUEST_BOOT_FAILED',
  'GUEST_HOST_KEY_MISMATCH',
  'GUEST_UNREACHABLE',
  'DOCKER_TIMEOUT',
  'SOCKET_IN_USE',
  'SOCKET_PATH_OCCUPIED',
  'SOCKET_PATH_TOO_LONG',
  'DOCKER_CONTEXT_CONFLICT',
  'DISK_SHRINK',
  'UNSUPPORTED_HOST',
  'UNSUPPORTED_OS',
  'VM_SPEC_UNSUPPORTED',
  'VFKIT_MISSING',
  'VFKIT_FAILED',
  'HYPERV_DISABLED',
  'HYPERV_NOT_ADMIN',
  'HYPERV_SWITCH_MISSING',
  'HYPERV_FAILED',
  'POWERSHELL_MISSING',
  'INVALID_HOST_PATH',
  'CONFIRMATION_NEEDED',
  'DOCKER_UNREACHABLE',
  'DOCKER_NOT_FOUND',
  'DOCKER_CONFLICT',
  'DOCKER_FAILED',
  'STREAM_NOT_FOUND',
  'DASHBOARD_NOT_BUILT',
  'PATH_NOT_PRIVATE',
  'PORT_IN_USE',
  'SHARE_MOUNT_FAILED',
  'VIRTIOFSD_FAILED',
  'VIRTIOFSD_UNPACK_FAILED',
  'VIRTIOFSD_UNPACK_NEEDS_ROOT',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  hint: string;
  /** Extra lines for the curious: a log tail, the failing command. */
  details?: string;
}

export class BerthError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly details?: string;

  constructor(code: ErrorCode, message: string, hint: string, details?: string) {
    super(message);
    this.name = 'BerthError';
    this.code = code;
    this.hint = hint;
    this.details = details;
  }

  toInfo(): ErrorInfo {
    const info: ErrorInfo = { code: this.code, message: this.message, hint: this.hint };
    if (this.details) info.details = this.details;
    return info;
  }
}

/** Any thrown value as an ErrorInfo; unknown errors become INTERNAL. */
export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof BerthError) return err.toInfo();
  const message = err instanceof Error ? err.message : String(err);
  return {
    code: 'INTERNAL',
    message: `unexpected error: ${message}`,
    hint: 'This is a bug in Berth. `berth logs --engine` has the details; please report it.',
  };
}

export function isBerthError(err: unknown, code?: ErrorCode): err is BerthError {
  return err instanceof BerthError && (code === undefined || err.code === code);
}
