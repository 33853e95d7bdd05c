// cometbox.mjs: the ES module entry of the cometbox browser client.
//
//   import { Cometbox } from "/cometbox.mjs";
//
// cometbox.js is a UMD file (a <script> tag sets the global Cometbox); it
// has no named exports of its own, so this module loads it and re-exports
// the global it sets. In Node (CommonJS) the same file is module.exports,
// which arrives here as the namespace's default.
import * as umd from "./cometbox.js";

const Cometbox = (umd && umd.default) || globalThis.Cometbox;

export { Cometbox };
export const CometboxError = Cometbox.CometboxError;
export default Cometbox;
