//! Text columns: tokenization with the `tokenizers` crate (trained on the training texts, or
//! loaded from a `vocab.txt` / `tokenizer.json`), then token-id sequences, bag-of-words counts or
//! TF-IDF.

use std::sync::OnceLock;

use pipeline_core::{Feature, FeatureKind};
use serde::{Deserialize, Serialize};
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::normalizers::{Lowercase, NFD, Sequence as NormalizerSequence, StripAccents};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, NormalizerWrapper, Tokenizer, TruncationParams};

use crate::config::{TextConfig, TextOutput, TokenizerConfig};
use crate::{Error, Result};

/// The special tokens of trained vocabularies, `[PAD]` first (id 0).
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// A fitted text column.
#[derive(Debug, Serialize, Deserialize)]
pub struct TextTransform {
    /// The column.
    pub name: String,
    /// The tokenizer, as `tokenizers` serializes it (a `tokenizer.json`).
    pub tokenizer: String,
    /// What the model sees.
    pub output: TextOutput,
    /// Tokens per text, for sequences.
    pub max_length: usize,
    /// Vocabulary size (special tokens included).
    pub vocab_size: usize,
    /// The padding id.
    pub pad_id: u32,
    /// Per-token inverse document frequency (TF-IDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idf: Option<Vec<f32>>,
    #[serde(skip)]
    parsed: OnceLock<Tokenizer>,
}

impl Clone for TextTransform {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            tokenizer: self.tokenizer.clone(),
            output: self.output,
            max_length: self.max_length,
            vocab_size: self.vocab_size,
            pad_id: self.pad_id,
            idf: self.idf.clone(),
            parsed: OnceLock::new(),
        }
    }
}

impl PartialEq for TextTransform {
    fn eq(&self, o: &Self) -> bool {
        (&self.name, &self.tokenizer, self.output, self.max_length, self.vocab_size, self.pad_id, &self.idf)
            == (&o.name, &o.tokenizer, o.output, o.max_length, o.vocab_size, o.pad_id, &o.idf)
    }
}

fn tk_err(column: &str) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> Error + '_ {
    move |e| Error::Text { column: column.into(), message: e.to_string() }
}

fn bert_normalizer(lowercase: bool) -> BertNormalizer {
    BertNormalizer::new(true, true, Some(lowercase), lowercase)
}

/// Builds (and trains, for the trained kinds) the tokenizer `config` describes.
fn build(name: &str, config: &TokenizerConfig, texts: &[&str]) -> Result<Tokenizer> {
    let e = tk_err(name);
    let specials: Vec<AddedToken> = SPECIALS.iter().map(|s| AddedToken::from(*s, true)).collect();
    let mut tk = match config {
        TokenizerConfig::Wordpiece(c) => {
            let model = WordPiece::builder().unk_token("[UNK]".into()).build().map_err(&e)?;
            let mut tk = Tokenizer::new(model);
            tk.with_normalizer(Some(bert_normalizer(c.lowercase)));
            tk.with_pre_tokenizer(Some(BertPreTokenizer));
            let mut trainer = TrainerWrapper::WordPieceTrainer(
                WordPieceTrainer::builder()
                    .vocab_size(c.vocab_size)
                    .min_frequency(c.min_frequency)
                    .show_progress(false)
                    .special_tokens(specials)
                    .build(),
            );
            tk.train(&mut trainer, texts.iter()).map_err(&e)?;
            tk
        }
        TokenizerConfig::Bpe(c) => {
            let model = BPE::builder().unk_token("[UNK]".into()).build().map_err(&e)?;
            let mut tk = Tokenizer::new(model);
            if c.lowercase {
                let n: NormalizerWrapper =
                    NormalizerSequence::new(vec![NFD.into(), Lowercase.into(), StripAccents.into()]).into();
                tk.with_normalizer(Some(n));
            }
            tk.with_pre_tokenizer(Some(Whitespace {}));
            let mut trainer = TrainerWrapper::BpeTrainer(
                BpeTrainer::builder()
                    .vocab_size(c.vocab_size)
                    .min_frequency(c.min_frequency)
                    .show_progress(false)
                    .special_tokens(specials)
                    .build(),
            );
            tk.train(&mut trainer, texts.iter()).map_err(&e)?;
            tk
        }
        TokenizerConfig::Vocab(v) => {
            let path = v.path.to_string_lossy();
            let model = WordPiece::from_file(&path).unk_token("[UNK]".into()).build().map_err(&e)?;
            let mut tk = Tokenizer::new(model);
            tk.with_normalizer(Some(bert_normalizer(v.lowercase)));
            tk.with_pre_tokenizer(Some(BertPreTokenizer));
            tk
        }
        TokenizerConfig::File(f) => Tokenizer::from_file(&f.path).map_err(&e)?,
    };
    // BERT-style models see `[CLS] text [SEP]`.
    if matches!(config, TokenizerConfig::Wordpiece(_) | TokenizerConfig::Vocab(_))
        && let (Some(cls), Some(sep)) = (tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]"))
    {
        tk.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
    }
    Ok(tk)
}

impl TextTransform {
    /// Fits on the training texts of column `name`.
    pub fn fit(name: &str, texts: &[&str], config: &TextConfig) -> Result<Self> {
        let tk = build(name, &config.tokenizer, texts)?;
        let vocab_size = tk.get_vocab_size(true);
        let pad_id = ["[PAD]", "<pad>"].iter().find_map(|t| tk.token_to_id(t)).unwrap_or(0);
        let tokenizer = tk.to_string(false).map_err(tk_err(name))?;
        let mut t = Self {
            name: name.into(),
            tokenizer,
            output: config.output,
            max_length: config.max_length,
            vocab_size,
            pad_id,
            idf: None,
            parsed: OnceLock::new(),
        };
        if config.output == TextOutput::Tfidf {
            // Smoothed IDF over the training documents: ln((1 + n) / (1 + df)) + 1.
            let mut df = vec![0u32; vocab_size];
            for ids in t.token_ids(texts, false)? {
                let mut seen = ids.clone();
                seen.sort_unstable();
                seen.dedup();
                for id in seen {
                    df[id as usize] += 1;
                }
            }
            let n = texts.len() as f64;
            t.idf = Some(df.iter().map(|&d| (((1.0 + n) / (1.0 + f64::from(d))).ln() + 1.0) as f32).collect());
        }
        Ok(t)
    }

    fn tokenizer(&self) -> Result<&Tokenizer> {
        if let Some(t) = self.parsed.get() {
            return Ok(t);
        }
        let t: Tokenizer = self.tokenizer.parse().map_err(tk_err(&self.name))?;
        Ok(self.parsed.get_or_init(|| t))
    }

    /// Token ids of each text (ids below `vocab_size`).
    fn token_ids(&self, texts: &[&str], special: bool) -> Result<Vec<Vec<u32>>> {
        let tk = self.tokenizer()?;
        let enc = tk.encode_batch(texts.to_vec(), special).map_err(tk_err(&self.name))?;
        Ok(enc
            .into_iter()
            .map(|e| e.get_ids().iter().copied().filter(|&i| (i as usize) < self.vocab_size).collect())
            .collect())
    }

    /// Output values per text.
    pub fn width(&self) -> usize {
        match self.output {
            TextOutput::Sequence => self.max_length,
            TextOutput::BagOfWords | TextOutput::Tfidf => self.vocab_size,
        }
    }

    /// The output features (one per token of the vocabulary, or per sequence position).
    pub fn features(&self) -> Result<Vec<Feature>> {
        Ok(match self.output {
            TextOutput::Sequence => (0..self.max_length)
                .map(|i| Feature { name: format!("{}[{i}]", self.name), kind: FeatureKind::Numeric })
                .collect(),
            _ => {
                let tk = self.tokenizer()?;
                (0..self.vocab_size as u32)
                    .map(|id| Feature {
                        name: format!("{}:{}", self.name, tk.id_to_token(id).unwrap_or_else(|| id.to_string())),
                        kind: FeatureKind::Numeric,
                    })
                    .collect()
            }
        })
    }

    /// Writes the `width()` values of text `i` at `out[i * stride + offset ..]`.
    pub fn apply(&self, texts: &[&str], out: &mut [f32], stride: usize, offset: usize) -> Result<()> {
        match self.output {
            TextOutput::Sequence => {
                let tk = self.tokenizer()?.clone();
                let mut tk = tk;
                tk.with_truncation(Some(TruncationParams { max_length: self.max_length, ..Default::default() }))
                    .map_err(tk_err(&self.name))?;
                let enc = tk.encode_batch(texts.to_vec(), true).map_err(tk_err(&self.name))?;
                for (i, e) in enc.iter().enumerate() {
                    let row = &mut out[i * stride + offset..i * stride + offset + self.max_length];
                    row.fill(self.pad_id as f32);
                    for (slot, &id) in row.iter_mut().zip(e.get_ids()) {
                        *slot = id as f32;
                    }
                }
            }
            TextOutput::BagOfWords | TextOutput::Tfidf => {
                for (i, ids) in self.token_ids(texts, false)?.into_iter().enumerate() {
                    let row = &mut out[i * stride + offset..i * stride + offset + self.vocab_size];
                    for id in ids {
                        row[id as usize] += 1.0;
                    }
                    if let Some(idf) = &self.idf {
                        let mut norm = 0f32;
                        for (v, w) in row.iter_mut().zip(idf) {
                            *v *= w;
                            norm += *v * *v;
                        }
                        if norm > 0.0 {
                            let norm = norm.sqrt();
                            row.iter_mut().for_each(|v| *v /= norm);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TrainTokenizer, VocabFile};

    fn texts() -> Vec<&'static str> {
        vec![
            "Free entry in a weekly competition to win cash",
            "Ok lar joking with you",
            "WINNER you have won a free prize call now",
            "I will call you later ok",
            "free free free cash now",
        ]
    }

    fn config(kind: TokenizerConfig, output: TextOutput) -> TextConfig {
        TextConfig { tokenizer: kind, max_length: 8, output }
    }

    fn wordpiece() -> TokenizerConfig {
        TokenizerConfig::Wordpiece(TrainTokenizer { vocab_size: 200, min_frequency: 1, lowercase: true })
    }

    #[test]
    fn trained_wordpiece_sequences_are_padded_and_truncated() {
        let t = TextTransform::fit("sms", &texts(), &config(wordpiece(), TextOutput::Sequence)).unwrap();
        assert_eq!(t.pad_id, 0);
        let mut out = vec![-1.0; 2 * 8];
        t.apply(&["free cash", "free entry in a weekly competition to win cash now"], &mut out, 8, 0).unwrap();
        let cls = t.tokenizer().unwrap().token_to_id("[CLS]").unwrap() as f32;
        let sep = t.tokenizer().unwrap().token_to_id("[SEP]").unwrap() as f32;
        assert_eq!(out[0], cls);
        assert_eq!(out[3], sep);
        assert_eq!(&out[4..8], &[0.0; 4]);
        assert_eq!(out[8], cls);
        assert_eq!(out[15], sep, "truncated to 8 tokens, [SEP] kept");
    }

    /// scikit-learn 1.9.1, on the same five documents:
    /// ```python
    /// v = TfidfVectorizer().fit(docs); x = v.transform(["free free cash"]).toarray()[0]
    /// v.idf_[free], v.idf_[cash]   # 1.4054651081081644 1.6931471805599454
    /// x[free], x[cash]             # 0.8566057924991867 0.5159714296904823
    /// ```
    /// (Whole-word tokens here, so the vocabularies agree on these words.)
    #[test]
    fn tfidf_matches_scikit_learn() {
        let t = TextTransform::fit("sms", &texts(), &config(wordpiece(), TextOutput::Tfidf)).unwrap();
        let idf = t.idf.clone().unwrap();
        let tk = t.tokenizer().unwrap();
        let (free, cash) = (tk.token_to_id("free").unwrap() as usize, tk.token_to_id("cash").unwrap() as usize);
        assert!((f64::from(idf[free]) - 1.4054651081081644).abs() < 1e-6);
        assert!((f64::from(idf[cash]) - 1.6931471805599454).abs() < 1e-6);
        let mut out = vec![0.0; t.width()];
        t.apply(&["free free cash"], &mut out, t.width(), 0).unwrap();
        assert!((f64::from(out[free]) - 0.8566057924991867).abs() < 1e-6, "{}", out[free]);
        assert!((f64::from(out[cash]) - 0.5159714296904823).abs() < 1e-6, "{}", out[cash]);
        assert_eq!(out.iter().filter(|v| **v != 0.0).count(), 2);
    }

    #[test]
    fn bpe_and_saved_tokenizers_round_trip() {
        let bpe = TokenizerConfig::Bpe(TrainTokenizer { vocab_size: 120, min_frequency: 1, lowercase: true });
        let t = TextTransform::fit("sms", &texts(), &config(bpe, TextOutput::BagOfWords)).unwrap();
        let mut a = vec![0.0; t.width()];
        t.apply(&["call now"], &mut a, t.width(), 0).unwrap();
        assert!(a.iter().sum::<f32>() >= 2.0);
        // Serialized and loaded back: the same output.
        let back: TextTransform = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        let mut b = vec![0.0; back.width()];
        back.apply(&["call now"], &mut b, back.width(), 0).unwrap();
        assert_eq!(a, b);
        // And as a tokenizer.json file.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        std::fs::write(&p, &t.tokenizer).unwrap();
        let file = TokenizerConfig::File(crate::config::TokenizerFile { path: p });
        let f = TextTransform::fit("sms", &texts(), &config(file, TextOutput::BagOfWords)).unwrap();
        let mut c = vec![0.0; f.width()];
        f.apply(&["call now"], &mut c, f.width(), 0).unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn bert_vocab_files_add_cls_and_sep() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vocab.txt");
        std::fs::write(&p, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n##s\n").unwrap();
        let t = TextTransform::fit(
            "t",
            &[],
            &config(TokenizerConfig::Vocab(VocabFile { path: p, lowercase: true }), TextOutput::Sequence),
        )
        .unwrap();
        let mut out = vec![9.0; 8];
        t.apply(&["Hello worlds xyz"], &mut out, 8, 0).unwrap();
        assert_eq!(out, vec![2.0, 4.0, 5.0, 6.0, 1.0, 3.0, 0.0, 0.0]);
    }
}
