export { DEFAULT_MAX_FRAME_BYTES, WIRE_VERSION, createCodec } from "./codec.js";
export type { Codec, CodecOptions } from "./codec.js";
