export { loadConfig, parseTrustRoots, RegistryEnv, type RegistryConfig } from './config.js';
export { startRegistry, createRegistryApp, type RunningRegistry } from './registry.app.js';
export { selectForNode, selectPackage, unmetRequirement, selectionId, type NodeTraits } from './selection/module.selector.js';
export { buildAssignments } from './selection/assignments.js';
export { parseImage } from './images/image.parser.js';
export { openApiDocument } from './http/openapi.js';
