/**
 * One API operation's side effects: undo steps run (newest first) if the
 * operation fails part-way, and irreversible clean-up steps run only once it
 * has committed. Neither list stops at an error; all errors are reported.
 */
export class Transaction {
  private readonly undos: (() => Promise<unknown>)[] = [];
  private readonly after: (() => Promise<unknown>)[] = [];

  onRollback(undo: () => Promise<unknown>): void {
    this.undos.push(undo);
  }

  afterCommit(step: () => Promise<unknown>): void {
    this.after.push(step);
  }

  async rollback(): Promise<unknown[]> {
    return runAll([...this.undos].reverse());
  }

  async commit(): Promise<unknown[]> {
    return runAll(this.after);
  }
}

async function runAll(steps: (() => Promise<unknown>)[]): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}
