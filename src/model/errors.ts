/**
 * The one error type every layer throws for a user-visible failure. `kind`
 * picks the HTTP status the API answers with and the CLI's wording; messages
 * read "verb noun: cause" (see STYLE.md).
 */
export type ErrorKind = 'invalid' | 'not-found' | 'conflict' | 'unavailable' | 'internal';

const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  'not-found': 404,
  conflict: 409,
  unavailable: 503,
  internal: 500,
};

export class BridgeportError extends Error {
  readonly kind: ErrorKind;

  constructor(message: string, kind: ErrorKind = 'invalid', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BridgeportError';
    this.kind = kind;
  }

  get status(): number {
    return STATUS[this.kind];
  }
}

export const invalid = (message: string): BridgeportError => new BridgeportError(message, 'invalid');
export const notFound = (message: string): BridgeportError => new BridgeportError(message, 'not-found');
export const conflict = (message: string): BridgeportError => new BridgeportError(message, 'conflict');
