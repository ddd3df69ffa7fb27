// Server-Sent Events as Triton's generate_stream sends them, read with fetch's body stream only
// (no Node.js modules: this file is part of the fetch-only entry point).

/**
 * Calls onData with the data of each Server-Sent Event of the response body. Before each read of
 * the body it awaits what beforeRead returns, if anything: a reader that lags holds the body back.
 */
export async function readEvents(
  response: Response,
  onData: (data: string) => void,
  beforeRead: () => Promise<void> | undefined = () => undefined,
): Promise<void> {
  if (!response.body) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const flush = (final: boolean): void => {
    const events = buffered.split(/\r?\n\r?\n/);
    buffered = final ? '' : events.pop() ?? '';
    for (const event of events) {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
        .join('\n');
      if (data !== '') onData(data);
    }
  };
  try {
    for (;;) {
      const wait = beforeRead();
      if (wait) await wait;
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      flush(false);
    }
    buffered += decoder.decode();
    flush(true);
  } finally {
    reader.releaseLock();
  }
}
