// One error type for everything bunker refuses or fails to do itself.
// The CLI prints the message on one line and exits with the code:
// 125 as Docker does for the runtime's own errors.
export class BunkerError extends Error {
  constructor(
    message: string,
    readonly exitCode = 125,
  ) {
    super(message);
  }
}

/** Errors printed already, one line each (a verb given several names goes on
 * past one that fails, as Docker's do): exit with the code, print nothing more. */
export class ReportedError extends BunkerError {}
