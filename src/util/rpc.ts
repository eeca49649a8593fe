// Request/response over a message channel (a worker thread, a child process): each request carries
// an id, the reply with that id settles the promise waiting for it, and a channel that dies fails
// every request still waiting, so none hangs. The owner wires the channel's events to resolve,
// reject and fail; what a message looks like stays the owner's protocol.

/** A request as it travels: the owner's message plus the id its reply must carry. */
export type WithId<T> = T & { id: number };

interface Waiting<Reply> {
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
}

export class RpcClient<Request extends object, Reply> {
  private readonly waiting = new Map<number, Waiting<Reply>>();
  private nextId = 1;
  /** Set by fail(..., { permanent: true }): every later request rejects with it at once. */
  private failure?: Error;

  /** `post` sends one message on the channel: the request with its id. */
  constructor(private readonly post: (message: WithId<Request>) => void) {}

  /** Sends `request` under a fresh id; `reply` settles when resolve or reject is called with that id. */
  send(request: Request): { id: number; reply: Promise<Reply> } {
    const id = this.nextId++;
    if (this.failure !== undefined) return { id, reply: Promise.reject(this.failure) };
    const reply = new Promise<Reply>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    try {
      this.post({ ...request, id });
    } catch (err) {
      this.reject(id, err instanceof Error ? err : new Error(String(err)));
    }
    return { id, reply };
  }

  /** `send` for callers that never need the id. */
  call(request: Request): Promise<Reply> {
    return this.send(request).reply;
  }

  /** Settles request `id` with its reply; false when nothing waits for it (forgotten, failed, unknown). */
  resolve(id: number, reply: Reply): boolean {
    const w = this.take(id);
    w?.resolve(reply);
    return w !== undefined;
  }

  reject(id: number, error: Error): boolean {
    const w = this.take(id);
    w?.reject(error);
    return w !== undefined;
  }

  /** Stops waiting for `id` without settling it (the caller settles its own promise, e.g. on cancel); a late reply is ignored. */
  forget(id: number): boolean {
    return this.take(id) !== undefined;
  }

  /**
   * The channel failed: every waiting request rejects with `error`. With `permanent`, so does every
   * later one (a channel that is not replaced); without, later requests go to the owner's new channel.
   */
  fail(error: Error, opts: { permanent?: boolean } = {}): void {
    if (opts.permanent && this.failure === undefined) this.failure = error;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(error);
  }

  /** Requests sent and not yet settled. */
  get pending(): number {
    return this.waiting.size;
  }

  private take(id: number): Waiting<Reply> | undefined {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    return w;
  }
}
