/**
 * Session windows over user clicks: a session ends after 30 seconds without a click from that
 * user (the Kafka key). With idle: once the partition is caught up and quiet for 10 seconds,
 * time moves with the wall clock, so the last sessions close too (docs/windows.md). Written in
 * the function-first form.
 */
import { collect, count, sluice, stream } from 'sluice';

export interface Click {
  readonly user: string;
  readonly page: string;
}

export const clickSessions = stream<Click>('clicks', { validate: (c) => typeof c?.page === 'string' || 'page must be a string' })
  .sessionWindow('30s', { grace: '5s', idle: '10s' })
  .aggregate({ clicks: count(), pages: collect((c: Click) => c.page) }, { name: 'session' })
  .map((s) => ({ ...s, seconds: (s.end - s.start) / 1000 }))
  .to('click-sessions');

export const handler = sluice(clickSessions);
