import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { readRepoFile, repoPath } from '../repo.js';

/** A manifest as written, with where it came from. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
  file: string;
}

export interface Kustomization {
  namespace?: string;
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  replicas?: { name: string; count: number }[];
  patches?: { path?: string; target?: { kind?: string; name?: string } }[];
}

interface Validatable {
  validate(): void;
}

/** The kinds our manifests use, with the kubernetes-models class that validates each against the API schema. */
const MODELS: Record<string, new (data: never) => Validatable> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

/** Every YAML document of one file (relative to the repository root), each with a kind, apiVersion and name. */
export function readManifests(file: string): Manifest[] {
  return parseAllDocuments(readRepoFile(file)).flatMap((doc, i) => {
    if (doc.errors.length) throw new Error(`${file} document ${i + 1}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Partial<Manifest> | null;
    if (!value) return [];
    if (!value.apiVersion || !value.kind || !value.metadata?.name) throw new Error(`${file} document ${i + 1}: needs apiVersion, kind and metadata.name`);
    return [{ ...value, file } as Manifest];
  });
}

export function readKustomization(dir: string): Kustomization {
  return readManifestsRaw(join(dir, 'kustomization.yaml')) as Kustomization;
}

function readManifestsRaw(file: string): unknown {
  return parseAllDocuments(readRepoFile(file))[0]!.toJS();
}

/** The resources of a kustomization folder (following nested folders), with its namespace applied as kustomize would. */
export function loadKustomization(dir: string): Manifest[] {
  const k = readKustomization(dir);
  const out: Manifest[] = [];
  for (const resource of k.resources ?? []) {
    const path = join(dir, resource);
    if (!existsSync(repoPath(path))) throw new Error(`${dir}/kustomization.yaml: resource ${resource} does not exist`);
    out.push(...(existsSync(repoPath(path, 'kustomization.yaml')) ? loadKustomization(path) : readManifests(path)));
  }
  if (k.namespace) for (const m of out) if (m.kind !== 'Namespace') m.metadata = { ...m.metadata, namespace: k.namespace };
  return out;
}

/** Schema errors of one manifest (kubernetes-models), or a note that its kind is not one we know. */
export function validateManifest(m: Manifest): string | undefined {
  const Model = MODELS[`${m.apiVersion}/${m.kind}`];
  if (!Model) return `${m.file}: ${m.apiVersion} ${m.kind} is not a kind this deployment uses`;
  const { file: _file, ...data } = m;
  try {
    new Model(data as never).validate();
    return undefined;
  } catch (e) {
    return `${m.file} ${m.kind}/${m.metadata.name}: ${e instanceof Error ? e.message : String(e)}`;
  }
}
