import { OllmError } from "../errors.js";
import { AddedVocabulary } from "./added-vocabulary.js";
import { renderChatTemplate, selectChatTemplate } from "./chat-template.js";
import {
  buildDecoder,
  cleanUpTokenization,
  type DecodeChain,
  hasByteFallback,
  isByteToken,
} from "./decoder.js";
import { type ChatTemplates, readTokenizerFiles, type TokenizerFiles } from "./files.js";
import { buildModel, type TokenModel } from "./model.js";
import { buildNormalizer, type Normalize } from "./normalizer.js";
import { buildPostProcessor, type PostProcess } from "./post-processor.js";
import { buildPreTokenizer, type PreTokenize } from "./pre-tokenizer.js";
import { type AddedToken, collectAddedTokens, namedSpecialTokens, tokenContent } from "./special-tokens.js";
import { type StreamDecoder, WindowStreamDecoder } from "./stream-decoder.js";

export type { StreamDecoder } from "./stream-decoder.js";

export interface ChatMessage {
  role: string;
  content: string | Array<{ type: string; text?: string; [k: string]: unknown }>;
  [k: string]: unknown;
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  tools?: unknown[];
  documents?: unknown[];
  extra?: Record<string, unknown>;
}

/**
 * A Hugging Face fast tokenizer (tokenizer.json + tokenizer_config.json) that encodes, decodes and renders
 * chat templates the way transformers v5 does.
 */
export class Tokenizer {
  readonly vocabSize: number;
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly bosTokenId?: number;
  readonly eosTokenIds: number[];
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate?: string;

  private readonly model: TokenModel;
  private readonly normalize: Normalize;
  private readonly preTokenize: PreTokenize;
  private readonly postProcess: PostProcess;
  private readonly decoder: DecodeChain | undefined;
  private readonly added: AddedVocabulary;
  private readonly addedById: Map<number, AddedToken>;
  private readonly addedByContent: Map<string, AddedToken>;
  /** What decode() uses for added tokens: the normalized form of normalized ones (tokenizers' rule). */
  private readonly addedDecodeForm: Map<number, string>;
  private readonly specialContents: Set<string>;
  private readonly specialTokens: Record<string, string>;
  private readonly chatTemplates: ChatTemplates | undefined;
  private readonly cleanUp: boolean;
  private readonly byteFallback: boolean;
  private readonly where: string;

  static async fromDir(dir: string): Promise<Tokenizer> {
    return new Tokenizer(await readTokenizerFiles(dir));
  }

  constructor(files: TokenizerFiles) {
    const { tokenizerJson: json, config } = files;
    this.where = files.dir;
    this.model = buildModel(json.model);
    this.normalize = buildNormalizer(json.normalizer);
    this.preTokenize = buildPreTokenizer(json.pre_tokenizer);
    this.postProcess = buildPostProcessor(json.post_processor);
    this.decoder = buildDecoder(json.decoder);
    this.byteFallback = hasByteFallback(json.decoder);

    const addedTokens = collectAddedTokens(json, config, this.model);
    this.added = new AddedVocabulary(addedTokens, this.normalize, config.split_special_tokens === true);
    this.addedById = new Map(addedTokens.map((t) => [t.id, t]));
    this.addedByContent = new Map(addedTokens.map((t) => [t.content, t]));
    this.addedDecodeForm = new Map(
      addedTokens.map((t) => [t.id, t.normalized ? this.normalize(t.content) : t.content]),
    );
    this.specialContents = new Set(addedTokens.filter((t) => t.special).map((t) => t.content));
    this.specialTokenIds = new Set(addedTokens.filter((t) => t.special).map((t) => t.id));
    const contents = new Set(this.model.vocab.keys());
    for (const t of addedTokens) contents.add(t.content);
    this.vocabSize = contents.size;

    // transformers ignores clean_up_tokenization_spaces for BPE models: it would eat real spaces.
    this.cleanUp =
      config.clean_up_tokenization_spaces === true &&
      (this.model.type !== "BPE" ||
        config.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output === true);

    this.specialTokens = namedSpecialTokens(config);
    this.bosToken = tokenContent(config.bos_token);
    this.eosToken = tokenContent(config.eos_token);
    this.bosTokenId = this.bosToken === undefined ? undefined : this.tokenToId(this.bosToken);
    const eosId = this.eosToken === undefined ? undefined : this.tokenToId(this.eosToken);
    this.eosTokenIds = eosId === undefined ? [] : [eosId];
    this.chatTemplates = files.chatTemplates;
    const templates = files.chatTemplates;
    this.chatTemplate = typeof templates === "string" ? templates : templates?.default;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") throw new OllmError("INVALID_ARGUMENT", "encode() takes a string.");
    const ids: number[] = [];
    for (const piece of this.added.splitRaw(text)) {
      if (piece.id !== undefined) {
        ids.push(piece.id);
        continue;
      }
      // Each stretch between added tokens is normalized on its own, as tokenizers does.
      const normalized = { text: this.normalize(piece.text), atStart: piece.atStart };
      for (const part of this.added.splitNormalized(normalized)) {
        if (part.id !== undefined) ids.push(part.id);
        // A loop, not push(...ids): spreading a long text's ids as arguments overflows the stack.
        else for (const id of this.model.tokenize(this.preTokenize([part]).map((p) => p.text))) ids.push(id);
      }
    }
    return opts.addSpecialTokens === false ? ids : this.postProcess(ids);
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens === true;
    const tokens: string[] = [];
    for (const id of ids) {
      const token = this.visibleToken(id, skip);
      if (token !== undefined) tokens.push(token);
    }
    const text = this.decoder ? this.decoder(tokens).join("") : tokens.join(" ");
    return this.cleanUp ? cleanUpTokenization(text) : text;
  }

  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const template = selectChatTemplate(this.chatTemplates, this.where, opts.tools);
    return renderChatTemplate(template, {
      messages,
      addGenerationPrompt: opts.addGenerationPrompt ?? true,
      tools: opts.tools,
      documents: opts.documents,
      specialTokens: this.specialTokens,
      extra: opts.extra,
    });
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken(id);
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token);
  }

  createStreamDecoder(opts: { skipSpecialTokens?: boolean } = {}): StreamDecoder {
    const skip = opts.skipSpecialTokens === true;
    return new WindowStreamDecoder({
      decode: (ids) => this.decode(ids, { skipSpecialTokens: skip }),
      visibleToken: (id) => this.visibleToken(id, skip),
      isByteToken,
      byteFallback: this.byteFallback,
      cleanUp: this.cleanUp,
    });
  }

  /** The token decode() uses for an id: unknown ids are dropped (as tokenizers does), so are skipped specials. */
  private visibleToken(id: number, skipSpecial: boolean): string | undefined {
    if (!Number.isInteger(id) || id < 0) {
      throw new OllmError("INVALID_ARGUMENT", `Token ids are non-negative integers; got ${String(id)}.`);
    }
    const token = this.addedDecodeForm.get(id) ?? this.model.idToToken(id);
    if (token === undefined || (skipSpecial && this.specialContents.has(token))) return undefined;
    return token;
  }
}
