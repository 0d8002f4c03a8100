export { startNotifier, type RunningNotifier } from './notifier.js';
export { loadConfig, NotifierConfig, type NotifierConfigInput } from './config.js';
export { signWebhook, verifyWebhook } from './channels/webhook.signature.js';
