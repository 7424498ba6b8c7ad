import { Writable } from "node:stream";

/** A writable stream that keeps what is written to it as text (a command's stdout or stderr). */
export class TextCapture extends Writable {
  text = "";
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}
