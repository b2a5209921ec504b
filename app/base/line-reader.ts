/**
 * Split a byte stream into lines, refusing any line longer than `max` bytes
 * (a peer that never sends a newline cannot make us buffer without end).
 */
export class LineReader {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly max: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      if (this.size + piece.length > this.max) return this.overflow();
      this.parts.push(piece);
      const line = Buffer.concat(this.parts).toString('utf8');
      this.parts = [];
      this.size = 0;
      start = nl + 1;
      if (line.trim()) this.onLine(line);
    }
    const rest = chunk.subarray(start);
    if (this.size + rest.length > this.max) return this.overflow();
    if (rest.length) {
      this.parts.push(Buffer.from(rest));
      this.size += rest.length;
    }
  }

  private overflow(): void {
    this.parts = [];
    this.size = 0;
    this.onOverflow();
  }
}
