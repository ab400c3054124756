// Driver name -> handler. The default registry holds every driver of the one driver list
// (handlers/index.ts); agents may add their own, never silently replace one.
import { StorageError, invalidArgType } from './errors';
import type { StorageHandler } from './handler';
import { STORAGE_HANDLERS } from './handlers/index';

export type {
  DeviceContext,
  ReleaseContext,
  ResumeContext,
  StorageContext,
  StorageHandler,
  StorageSteps,
} from './handler';

export class StorageHandlerRegistry {
  readonly #handlers = new Map<string, StorageHandler>();

  register(driver: string, handler: StorageHandler): this {
    if (typeof driver !== 'string' || driver === '') throw invalidArgType('driver', 'a non-empty string', driver);
    if (typeof handler !== 'object' || handler === null || typeof handler.create !== 'function') {
      throw invalidArgType('handler', 'an object with a create(storage, ctx) method', handler);
    }
    if (handler.devices !== undefined && typeof handler.devices !== 'function') {
      throw invalidArgType('handler.devices', 'a function', handler.devices);
    }
    if (this.#handlers.has(driver)) {
      throw new StorageError(
        'ERR_STORAGE_DRIVER_EXISTS',
        `a handler for storage driver '${driver}' is already registered`,
        {
          value: driver,
        },
      );
    }
    this.#handlers.set(driver, handler);
    return this;
  }

  get(driver: string): StorageHandler | undefined {
    return this.#handlers.get(driver);
  }

  has(driver: string): boolean {
    return this.#handlers.has(driver);
  }

  drivers(): string[] {
    return [...this.#handlers.keys()];
  }
}

/** A fresh registry holding every built-in driver (STORAGE_HANDLERS, in its order). */
export function defaultRegistry(): StorageHandlerRegistry {
  const registry = new StorageHandlerRegistry();
  for (const [driver, handler] of STORAGE_HANDLERS) registry.register(driver, handler);
  return registry;
}
