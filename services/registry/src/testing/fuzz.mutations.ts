// The mutation helpers are shared by every service's fuzz suite (libs/test-kit/src/fuzz.ts).
export { metricSum, mutate, mutatedPayload } from '@changeover/test-kit';
