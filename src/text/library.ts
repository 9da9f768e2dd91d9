import * as tokenizersLib from "@huggingface/tokenizers";

/**
 * The parts of @huggingface/tokenizers we build on. Its .d.ts files re-export with extensionless paths,
 * which NodeNext resolution does not follow, so the few members used are typed here.
 */
export interface LibModel {
  (pieces: string[]): string[];
  tokens_to_ids: Map<string, number>;
  vocab: string[];
}
export interface LibNormalizer {
  normalize(text: string): string;
}
export interface LibPreTokenizer {
  pre_tokenize_text(text: string): string[];
}
export interface LibPatterned {
  pattern: RegExp | null;
}

type Ctor<T> = new (config: unknown, extra?: unknown) => T;

const lib = tokenizersLib as unknown as {
  BPE: Ctor<LibModel>;
  Unigram: Ctor<LibModel>;
  WordPiece: Ctor<LibModel>;
  SequenceNormalizer: Ctor<LibNormalizer>;
  SequencePreTokenizer: Ctor<LibPreTokenizer>;
  SplitPreTokenizer: Ctor<LibPatterned>;
  ReplaceDecoder: Ctor<LibPatterned>;
};

export const {
  BPE,
  Unigram,
  WordPiece,
  SequenceNormalizer,
  SequencePreTokenizer,
  SplitPreTokenizer,
  ReplaceDecoder,
} = lib;
