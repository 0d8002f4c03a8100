import type { ClassService } from './classes/class.service.js';
import type { ImageService } from './images/image.service.js';
import type { NodeIdentityService } from './nodes/node-identity.js';
import type { NodeService } from './nodes/node.service.js';
import type { Counters } from './observability.js';
import type { BlobStore } from './packages/blob.store.js';
import type { PackageService } from './packages/package.service.js';
import type { SelectionService } from './selection/selection.service.js';

/** Every capability of the registry, wired once at start-up and shared by both transports. */
export interface RegistryDomain {
  packages: PackageService;
  blobs: BlobStore;
  nodes: NodeService;
  /** Node NATS credentials: minted at enrollment, revoked on request (inactive without REGISTRY_NATS_AUTHORITY). */
  identities: NodeIdentityService;
  classes: ClassService;
  selection: SelectionService;
  images: ImageService;
  counters: Counters;
  maxModuleBytes: number;
  maxImageBytes: number;
}
