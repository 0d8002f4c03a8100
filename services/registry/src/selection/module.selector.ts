// Module selection lives in the contracts: the agent applies at commit exactly what the registry selected.
export { selectForNode, selectPackage, selectionId, traitsKey, unmetRequirement, type NodeSelection, type NodeTraits, type Unsupported } from '@changeover/contracts';
