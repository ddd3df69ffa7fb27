// Property-based fuzzing (fast-check) of the HTTP transport's Server-Sent Events reader: however
// the body is cut into chunks (inside a line ending or a multi-byte character), the events that
// come out are the events that went in.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readEvents } from '../../sdk/src/http/sse.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 1000);

/** A response whose body arrives as these chunks. */
function chunkedResponse(bytes: Uint8Array, cuts: number[]): Response {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    if (point > start) chunks.push(bytes.subarray(start, point));
    start = Math.max(start, point);
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  return new Response(body);
}

async function eventsOf(response: Response): Promise<string[]> {
  const events: string[] = [];
  await readEvents(response, (data) => events.push(data));
  return events;
}

// Event data as generate_stream sends it: JSON, or any text without line breaks (a data line
// cannot hold one), with non-ASCII characters.
const line = fc.string({ unit: fc.oneof(fc.constantFrom('é', '€', '😀', ' ', ':'), fc.string({ minLength: 1, maxLength: 1 })), maxLength: 24 })
  .filter((text) => !/[\r\n]/.test(text));
const event = fc.array(line, { minLength: 1, maxLength: 3 }).filter((lines) => lines.join('\n') !== '');

describe('Server-Sent Events reader', () => {
  it('gives back the events that were sent, however the body is chunked', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(event, { maxLength: 6 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 12 }), async (events, crlf, cuts) => {
        const newline = crlf ? '\r\n' : '\n';
        // Multi-line data is sent as several data: lines; a comment line and an id: line are ignored.
        const text = events.map((lines) => [': comment', ...lines.map((l) => `data: ${l}`), 'id: 7'].join(newline) + newline + newline).join('');
        const received = await eventsOf(chunkedResponse(new TextEncoder().encode(text), cuts));
        expect(received).toEqual(events.map((lines) => lines.join('\n')));
      }),
      { numRuns: RUNS },
    );
  });
});
