// An error with an HTTP status for Insights' routes (the server's error handler sends it as { error, code }).
export function httpError(status: number, message: string, code = "ERR_BAD_OPTION"): Error & { statusCode: number; code: string } {
  return Object.assign(new Error(message), { statusCode: status, code });
}
