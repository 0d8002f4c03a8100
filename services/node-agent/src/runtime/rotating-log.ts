import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, writeSync } from 'node:fs';

const NEWLINE = 0x0a;
/** How far past the size limit a file may grow to finish the line in progress (a quarter of the limit, 64 KiB at most), so a line is not cut across two files. */
const LINE_SLACK = 64 * 1024;
const slackOf = (maxBytes: number) => Math.min(LINE_SLACK, Math.floor(maxBytes / 4));

export interface RotatingLogOptions {
  maxBytes: number;
  /** Rotated files kept besides the current one: `<path>.1` (newest) … `<path>.<keep>`. */
  keep: number;
  onRotate?: (path: string) => void;
}

/**
 * A log file the agent writes itself and rotates by size: when the next bytes would take it past
 * `maxBytes`, the file is cut after the last whole line that fits (or, when it ends inside a line,
 * after that line if it ends within a quarter of the limit), renamed to `.1` (older ones shift up,
 * the one past `keep` is replaced) and a new file starts with the rest. Writes are synchronous and
 * this is the only writer, so no byte read from a process is lost or reordered by a rotation. Only a
 * line longer than that is split across files.
 */
export class RotatingLog {
  private fd = -1;
  private size = 0;
  /** The current file ends inside a line (its last byte is not a newline). */
  private midLine = false;

  constructor(
    readonly path: string,
    private readonly opts: RotatingLogOptions,
  ) {
    this.open();
  }

  write(chunk: Uint8Array): void {
    if (this.fd < 0) this.open();
    let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (rest.length) {
      const room = this.opts.maxBytes - this.size;
      if (rest.length <= room) return this.append(rest);
      // The last whole line that fits closes this file.
      const cut = room > 0 ? rest.lastIndexOf(NEWLINE, room - 1) : -1;
      if (cut >= 0) {
        this.append(rest.subarray(0, cut + 1));
        rest = rest.subarray(cut + 1);
        this.rotate();
        continue;
      }
      // The line in progress is finished here if it ends soon after the limit.
      if (this.midLine) {
        const end = rest.indexOf(NEWLINE);
        const upto = end >= 0 ? end + 1 : rest.length;
        if (this.size + upto - this.opts.maxBytes <= slackOf(this.opts.maxBytes)) {
          this.append(rest.subarray(0, upto));
          rest = rest.subarray(upto);
          // Without its end in these bytes, the line goes on in the next ones.
          if (end >= 0) this.rotate();
          continue;
        }
      }
      // The next line starts a new file; a line longer than a whole file is cut at the limit.
      if (this.size > 0 && !this.midLine) {
        this.rotate();
        continue;
      }
      const take = Math.max(room, 0);
      if (take > 0) {
        this.append(rest.subarray(0, take));
        rest = rest.subarray(take);
      }
      this.rotate();
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private append(bytes: Buffer): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    this.size += bytes.length;
    this.midLine = bytes[bytes.length - 1] !== NEWLINE;
  }

  private rotate(): void {
    this.close();
    for (let i = this.opts.keep; i >= 1; i--) {
      const from = i === 1 ? this.path : `${this.path}.${i - 1}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${i}`);
    }
    this.opts.onRotate?.(this.path);
    this.open();
  }

  private open(): void {
    this.fd = openSync(this.path, 'a');
    this.size = fstatSync(this.fd).size;
    this.midLine = false;
    if (this.size > 0) {
      const last = Buffer.alloc(1);
      const rfd = openSync(this.path, 'r');
      try {
        readSync(rfd, last, 0, 1, this.size - 1);
      } finally {
        closeSync(rfd);
      }
      this.midLine = last[0] !== NEWLINE;
    }
  }
}
