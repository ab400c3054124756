// Kata's multi-layer EROFS rootfs (agent storage/multi_layer_erofs.rs, runtime-rs
// erofs_rootfs.rs): the runtime sends one ext4 upper layer and one or more EROFS lower layers as
// separate block storages marked with `X-kata.*` option words, all aimed at the container's rootfs.
// The agent assembles them into one overlay. Here the marked storages of a request become one
// `erofs.multi-layer` storage that carries them as `layers`, so the Sandbox holds, counts and
// rolls back the overlay and every mount beneath it as one storage.
import { DRIVER_MULTI_LAYER_EROFS } from '../drivers';
import type { Storage } from '../storage';

export const MULTI_LAYER_DRIVER = DRIVER_MULTI_LAYER_EROFS;

/** Kata's marker words (multi_layer_erofs.rs); each is a whole option element. */
export const MultiLayerMarkers = Object.freeze({
  multiLayer: 'X-kata.multi-layer=true',
  upper: 'X-kata.overlay-upper',
  lower: 'X-kata.overlay-lower',
  gptPartitioned: 'X-kata.gpt-partitioned=true',
  partitionNumber: 'X-kata.partition-number=',
  mkdirPath: 'X-kata.mkdir.path=',
  dmverityEnabled: 'X-kata.dmverity-enabled=true',
});

const has = (s: Storage, word: string): boolean => (s.options ?? []).includes(word);

/** Kata's is_multi_layer_storage. */
function isMultiLayerStorage(s: Storage): boolean {
  return s.driver === MULTI_LAYER_DRIVER || has(s, MultiLayerMarkers.multiLayer);
}

/** Kata's is_upper_storage: an ext4 layer carrying the upper or the multi-layer marker. */
export function isUpperLayer(s: Storage): boolean {
  return s.fstype === 'ext4' && (has(s, MultiLayerMarkers.upper) || has(s, MultiLayerMarkers.multiLayer));
}

/** Kata's is_lower_storage. */
export function isLowerLayer(s: Storage): boolean {
  return has(s, MultiLayerMarkers.lower) || (s.fstype === 'erofs' && has(s, MultiLayerMarkers.multiLayer));
}

/**
 * The request with its multi-layer storages replaced, at the first one's place, by one
 * `erofs.multi-layer` storage whose mount point is the upper layer's (else the first lower
 * layer's, Kata's implicit /run-backed upper) and whose `layers` are those storages in order.
 * A request without markers comes back as it was.
 */
export function groupMultiLayer(storages: Storage[]): Storage[] {
  const members = storages.filter(isMultiLayerStorage);
  if (members.length === 0) return storages;
  const target = (members.find(isUpperLayer) ?? members.find(isLowerLayer) ?? members[0]!).mountPoint;
  const group: Storage = {
    driver: MULTI_LAYER_DRIVER,
    source: 'overlay',
    fstype: 'overlay',
    mountPoint: target,
    layers: members,
  };
  if (members.some((m) => m.shared === true)) group.shared = true;
  const out: Storage[] = [];
  for (const s of storages) {
    if (!isMultiLayerStorage(s)) out.push(s);
    else if (s === members[0]) out.push(group);
  }
  return out;
}
