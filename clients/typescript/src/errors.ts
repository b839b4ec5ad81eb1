/** Errors shared by the client's modules. */

/** A record in Redis does not match the contract (a wrong prefix, or another writer). */
export class WireFormatError extends Error {
  override name = "WireFormatError";
}
