import { z } from 'zod';
import { RESTART_KEYS, SettingsSchema, defaultSettings } from '../engine/settings/schema.js';

/**
 * The settings keys as a front end shows them (`berth settings set --help`,
 * unit parsing, "did you mean"): generated from the settings schema, so a
 * key, range or default added there shows up here by itself.
 */
export interface SettingsKey {
  key: string;
  /**
   * number, true/false, one of a list, text, a list of text (set
   * comma-separated), or a list edited by its own command.
   */
  type: 'number' | 'boolean' | 'choice' | 'text' | 'texts' | 'list';
  description: string;
  /** A number key that takes whole numbers only. */
  integer?: boolean;
  min?: number;
  max?: number;
  choices?: string[];
  /** The unit of a size key, from its name (memoryMiB: MiB): `settings set` takes other units too. */
  unit?: 'MiB' | 'GiB';
  default: unknown;
  /** Changing it needs `berth restart`. */
  restart: boolean;
}

interface JsonProp {
  type?: string;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  description?: string;
  items?: { type?: string };
}

export function settingsKeys(): SettingsKey[] {
  const props = (z.toJSONSchema(SettingsSchema, { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, JsonProp> }).properties;
  const defaults = defaultSettings() as Record<string, unknown>;
  return Object.entries(props).map(([key, p]) => {
    const type: SettingsKey['type'] = p.enum
      ? 'choice'
      : p.type === 'boolean'
        ? 'boolean'
        : p.type === 'string'
          ? 'text'
          : p.type === 'array'
            ? p.items?.type === 'string'
              ? 'texts'
              : 'list'
            : 'number';
    const unit = /(MiB|GiB)$/.exec(key)?.[1] as SettingsKey['unit'];
    return {
      key,
      type,
      description: p.description ?? '',
      ...(p.type === 'integer' ? { integer: true } : {}),
      ...(type === 'number' && p.minimum !== undefined ? { min: p.minimum } : {}),
      ...(type === 'number' && p.maximum !== undefined && p.maximum < Number.MAX_SAFE_INTEGER ? { max: p.maximum } : {}),
      ...(p.enum ? { choices: p.enum } : {}),
      ...(unit ? { unit } : {}),
      default: defaults[key],
      restart: (RESTART_KEYS as readonly string[]).includes(key),
    };
  });
}
