import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** Where and how to reach the hub, as the Hugging Face tools read it from the environment. */
export interface HubSettings {
  /** Hub base URL without a trailing slash (HF_ENDPOINT, default https://huggingface.co). */
  endpoint: string;
  /** Access token: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the file `huggingface-cli login` writes. */
  token: string | undefined;
  /** HF_HUB_OFFLINE=1: never touch the network, use local copies only. */
  offline: boolean;
  /** The standard HF cache (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  hfCacheDir: string;
}

const TRUE_VALUES = new Set(["1", "true", "yes", "on", "y"]);

export function envFlag(value: string | undefined): boolean {
  return value !== undefined && TRUE_VALUES.has(value.trim().toLowerCase());
}

export function normalizeEndpoint(endpoint: string): string {
  return endpoint.trim().replace(/\/+$/, "");
}

type Env = Record<string, string | undefined>;

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v ? v : undefined;
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (same rule as huggingface_hub). */
export function hfHomeDir(env: Env = process.env): string {
  const home = nonEmpty(env.HF_HOME);
  if (home) return home;
  const xdg = nonEmpty(env.XDG_CACHE_HOME) ?? join(env.HOME ?? homedir(), ".cache");
  return join(xdg, "huggingface");
}

/** Reads the token file written by `huggingface-cli login` / `hf auth login` (HF_TOKEN_PATH or $HF_HOME/token). */
export function readTokenFile(env: Env = process.env): string | undefined {
  const path = nonEmpty(env.HF_TOKEN_PATH) ?? join(hfHomeDir(env), "token");
  try {
    return nonEmpty(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** The hub settings the environment asks for (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_CACHE, HF_HOME). */
export function hubSettingsFromEnv(env: Env = process.env): HubSettings {
  const endpoint = normalizeEndpoint(nonEmpty(env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT);
  const token = envFlag(env.HF_HUB_DISABLE_IMPLICIT_TOKEN)
    ? undefined
    : (nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN) ?? readTokenFile(env));
  const hfCacheDir =
    nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE) ?? join(hfHomeDir(env), "hub");
  return { endpoint, token, offline: envFlag(env.HF_HUB_OFFLINE), hfCacheDir };
}
