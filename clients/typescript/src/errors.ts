// KilnError: the one error the client throws, for kiln's answers ({error, message} with a
// status) and for failures to reach kiln at all (status 0).

/** kiln's `{error, message}` body. */
export interface ErrorBody {
  error: string;
  message: string;
}

/** What a {@link KilnError} knows besides its message. */
export interface KilnErrorInit {
  /** The HTTP status; 0 when kiln could not be reached or the client gave up (timeout). */
  status: number;
  /** kiln's stable error code (`not_found`, `invalid_input`, `unauthorized`, `forbidden`,
   * `unsupported_media_type`, `range_not_satisfiable`, `unavailable`, ...), or the client's
   * own for status 0: `connection_failed`, `timeout`, `aborted`, `lease_lost`. */
  error: string;
  message: string;
  method?: string;
  path?: string;
  /** The `WWW-Authenticate` challenge of a 401 or 403. */
  wwwAuthenticate?: string;
  cause?: unknown;
}

/** A failed call: kiln answered with an error status, or could not be reached. */
export class KilnError extends Error {
  override readonly name = 'KilnError';
  readonly status: number;
  readonly error: string;
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly wwwAuthenticate: string | undefined;

  constructor(init: KilnErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.error = init.error;
    this.method = init.method;
    this.path = init.path;
    this.wwwAuthenticate = init.wwwAuthenticate;
  }

  /** Whether kiln said the thing named does not exist (a 404). */
  get notFound(): boolean {
    return this.status === 404;
  }
}

/** Reads kiln's JSON error body; anything else becomes a code named after the status. */
export function errorFromBody(
  status: number,
  body: Buffer,
  method: string,
  path: string,
  wwwAuthenticate: string | null,
): KilnError {
  let error = `http_${status}`;
  let message = body.toString('utf8').trim() || `HTTP ${status}`;
  try {
    const parsed = JSON.parse(message) as Partial<ErrorBody>;
    if (typeof parsed.error === 'string') error = parsed.error;
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    // Not JSON: keep the text as the message.
  }
  return new KilnError({
    status,
    error,
    message,
    method,
    path,
    ...(wwwAuthenticate ? { wwwAuthenticate } : {}),
  });
}
