/**
 * Public surface of the web view: the app factory and the entry point's start-up check. Only
 * `src/main.ts` and tests import from here.
 */
export { createWebApp } from './web-app.ts';
export type { WebAppOptions, WebLogger } from './web-app.ts';
export { requireTokenUnlessLocal } from './auth.ts';
