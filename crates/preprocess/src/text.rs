//! Text columns: tokenization with the `tokenizers` crate (trained on the training texts, or
//! loaded from a `vocab.txt` / `tokenizer.json`) or word / character n-grams counted as
//! scikit-learn's vectorizers count them, then token-id sequences, bag-of-words counts or
//! TF-IDF.

use std::collections::HashMap;
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

use crate::config::{Analyzer, NgramTokenizer, TextConfig, TextOutput, TokenizerConfig};
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
    /// For n-gram vocabularies: the analyzer and the kept n-grams (sorted; the id of an n-gram
    /// is its position). `tokenizer` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngrams: Option<Ngrams>,
    /// TF-IDF with `1 + ln(tf)` counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sublinear_tf: bool,
    #[serde(skip)]
    parsed: OnceLock<Tokenizer>,
    #[serde(skip)]
    index: OnceLock<HashMap<String, u32>>,
}

/// A fitted n-gram vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ngrams {
    /// How texts are cut into n-grams.
    pub analyzer: NgramTokenizer,
    /// The vocabulary, in sorted order.
    pub terms: Vec<String>,
}

/// The n-grams of `text` as scikit-learn's `CountVectorizer(analyzer=…, ngram_range=…,
/// lowercase=…)` builds them (with repeats, in no particular order).
pub fn analyze(config: &NgramTokenizer, text: &str) -> Vec<String> {
    let text = if config.lowercase { text.to_lowercase() } else { text.to_string() };
    let [lo, hi] = config.ngram_range;
    let mut out = Vec::new();
    match config.analyzer {
        Analyzer::Word => {
            // `(?u)\b\w\w+\b`: maximal runs of word characters, two or more long.
            let words: Vec<&str> = text
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| w.chars().nth(1).is_some())
                .collect();
            for n in lo..=hi {
                for w in words.windows(n) {
                    out.push(w.join(" "));
                }
            }
        }
        Analyzer::Char => {
            let chars = collapse_whitespace(&text);
            for n in lo..=hi.min(chars.len()) {
                for w in chars.windows(n) {
                    out.push(w.iter().collect());
                }
            }
        }
        Analyzer::CharWb => {
            for word in text.split_whitespace() {
                let w: Vec<char> = std::iter::once(' ').chain(word.chars()).chain(std::iter::once(' ')).collect();
                for n in lo..=hi {
                    if w.len() < n {
                        // A word shorter than n counts once, whole (scikit-learn's rule).
                        out.push(w.iter().collect());
                        break;
                    }
                    for g in w.windows(n) {
                        out.push(g.iter().collect());
                    }
                }
            }
        }
    }
    out
}

/// The characters of `text` with every run of two or more whitespace characters replaced by
/// one space (scikit-learn's `\s\s+` → `" "`).
fn collapse_whitespace(text: &str) -> Vec<char> {
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    let mut run = 0usize;
    for c in text.chars() {
        if c.is_whitespace() {
            run += 1;
            if run == 2 {
                out.pop();
                out.push(' ');
            } else if run == 1 {
                out.push(c);
            }
        } else {
            run = 0;
            out.push(c);
        }
    }
    out
}

impl Ngrams {
    /// The vocabulary of `texts`: every n-gram within the document-frequency bounds, the
    /// `max_features` most frequent of them if set (ties: the first in sorted order), sorted.
    fn fit(config: &NgramTokenizer, texts: &[&str]) -> Self {
        let mut df: HashMap<String, (u64, u64)> = HashMap::new();
        for t in texts {
            let mut grams = analyze(config, t);
            grams.sort_unstable();
            let mut i = 0;
            while i < grams.len() {
                let mut j = i + 1;
                while j < grams.len() && grams[j] == grams[i] {
                    j += 1;
                }
                let e = df.entry(std::mem::take(&mut grams[i])).or_default();
                e.0 += 1;
                e.1 += (j - i) as u64;
                i = j;
            }
        }
        let n = texts.len();
        let (min, max) = (config.min_df.texts(n), config.max_df.texts(n));
        let mut kept: Vec<(String, u64)> = df
            .into_iter()
            .filter(|(_, (d, _))| (*d as f64) >= min && (*d as f64) <= max)
            .map(|(t, (_, total))| (t, total))
            .collect();
        kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(limit) = config.max_features
            && kept.len() > limit
        {
            kept.sort_by_key(|k| std::cmp::Reverse(k.1));
            kept.truncate(limit);
            kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        Self { analyzer: config.clone(), terms: kept.into_iter().map(|(t, _)| t).collect() }
    }
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
            ngrams: self.ngrams.clone(),
            sublinear_tf: self.sublinear_tf,
            parsed: OnceLock::new(),
            index: OnceLock::new(),
        }
    }
}

impl PartialEq for TextTransform {
    fn eq(&self, o: &Self) -> bool {
        (&self.name, &self.tokenizer, self.output, self.max_length, self.vocab_size, self.pad_id, &self.idf)
            == (&o.name, &o.tokenizer, o.output, o.max_length, o.vocab_size, o.pad_id, &o.idf)
            && (&self.ngrams, self.sublinear_tf) == (&o.ngrams, o.sublinear_tf)
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
        TokenizerConfig::Ngrams(_) => {
            return Err(Error::Text { column: name.into(), message: "n-grams have no tokenizers tokenizer".into() });
        }
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
        let (tokenizer, vocab_size, pad_id, ngrams) = match &config.tokenizer {
            TokenizerConfig::Ngrams(c) => {
                let ngrams = Ngrams::fit(c, texts);
                if ngrams.terms.is_empty() {
                    return Err(Error::Text {
                        column: name.into(),
                        message: "no n-gram of the training texts is within preprocess.text.tokenizer.min_df / \
                                  max_df: loosen them"
                            .into(),
                    });
                }
                (String::new(), ngrams.terms.len(), 0, Some(ngrams))
            }
            other => {
                let tk = build(name, other, texts)?;
                let vocab_size = tk.get_vocab_size(true);
                let pad_id = ["[PAD]", "<pad>"].iter().find_map(|t| tk.token_to_id(t)).unwrap_or(0);
                (tk.to_string(false).map_err(tk_err(name))?, vocab_size, pad_id, None)
            }
        };
        let mut t = Self {
            name: name.into(),
            tokenizer,
            output: config.output,
            max_length: config.max_length,
            vocab_size,
            pad_id,
            idf: None,
            ngrams,
            sublinear_tf: config.sublinear_tf,
            parsed: OnceLock::new(),
            index: OnceLock::new(),
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
        if let Some(ngrams) = &self.ngrams {
            let index = self
                .index
                .get_or_init(|| ngrams.terms.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect());
            return Ok(texts
                .iter()
                .map(|t| analyze(&ngrams.analyzer, t).iter().filter_map(|g| index.get(g).copied()).collect())
                .collect());
        }
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
            _ if self.ngrams.is_some() => self
                .ngrams
                .iter()
                .flat_map(|g| &g.terms)
                .map(|t| Feature { name: format!("{}:{t}", self.name), kind: FeatureKind::Numeric })
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
                    if self.sublinear_tf && self.idf.is_some() {
                        row.iter_mut().filter(|v| **v > 0.0).for_each(|v| *v = 1.0 + v.ln());
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
        TextConfig { tokenizer: kind, max_length: 8, output, sublinear_tf: false }
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

    fn sk_docs() -> Vec<&'static str> {
        vec![
            "Free entry in a weekly competition to win cash",
            "Ok lar... joking wif u oni",
            "WINNER!! you have won a free prize, call now",
            "I'll call you later  ok",
            "free free free cash now Café",
        ]
    }

    fn ngrams(analyzer: Analyzer, range: [usize; 2]) -> NgramTokenizer {
        NgramTokenizer { analyzer, ngram_range: range, ..NgramTokenizer::default() }
    }

    fn vocabulary(c: NgramTokenizer) -> Vec<String> {
        let t =
            TextTransform::fit("sms", &sk_docs(), &config(TokenizerConfig::Ngrams(c), TextOutput::BagOfWords)).unwrap();
        t.ngrams.unwrap().terms
    }

    /// scikit-learn 1.8, `CountVectorizer(**kw).fit(docs)` on the five documents above:
    /// the vocabulary sizes and first terms (`sorted(v.vocabulary_)[:6]`).
    #[test]
    fn ngram_vocabularies_match_scikit_learn() {
        use crate::config::DocFrequency;
        let words = vocabulary(ngrams(Analyzer::Word, [1, 2]));
        assert_eq!(words.len(), 49);
        assert_eq!(&words[..6], ["café", "call", "call now", "call you", "cash", "cash now"]);
        let wb = vocabulary(ngrams(Analyzer::CharWb, [2, 4]));
        assert_eq!(wb.len(), 266);
        assert_eq!(&wb[..6], [" a", " a ", " c", " ca", " caf", " cal"]);
        let chars = vocabulary(ngrams(Analyzer::Char, [1, 3]));
        assert_eq!(chars.len(), 240);
        assert_eq!(&chars[..6], [" ", " a", " a ", " c", " ca", " co"]);
        let min2 = vocabulary(NgramTokenizer { min_df: DocFrequency::Count(2), ..ngrams(Analyzer::Word, [1, 2]) });
        assert_eq!(min2, ["call", "cash", "free", "now", "ok", "you"]);
        let half = vocabulary(NgramTokenizer { max_df: DocFrequency::Fraction(0.5), ..ngrams(Analyzer::Word, [1, 2]) });
        assert_eq!(half.len(), 48);
        assert!(!half.contains(&"free".to_string()), "free is in 3 of 5 texts");
        let top = vocabulary(NgramTokenizer { max_features: Some(5), ..ngrams(Analyzer::Word, [1, 1]) });
        assert_eq!(top, ["call", "cash", "free", "now", "ok"]);
    }

    /// `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(docs)`, then
    /// `transform(["free free cash now call"])`: idf and values of six terms.
    #[test]
    fn sublinear_ngram_tfidf_matches_scikit_learn() {
        let mut c = config(TokenizerConfig::Ngrams(ngrams(Analyzer::Word, [1, 2])), TextOutput::Tfidf);
        c.sublinear_tf = true;
        let t = TextTransform::fit("sms", &sk_docs(), &c).unwrap();
        let mut out = vec![0.0; t.width()];
        t.apply(&["free free cash now call"], &mut out, t.width(), 0).unwrap();
        let terms = &t.ngrams.as_ref().unwrap().terms;
        let idf = t.idf.as_ref().unwrap();
        let expect = [
            ("free", 1.4054651081081644, 0.45398515651143606),
            ("cash", 1.6931471805599454, 0.32301417793468085),
            ("cash now", 2.09861228866811, 0.40036774771320505),
            ("call", 1.6931471805599454, 0.32301417793468085),
            ("free cash", 2.09861228866811, 0.40036774771320505),
            ("now", 1.6931471805599454, 0.32301417793468085),
        ];
        for (term, want_idf, want) in expect {
            let i = terms.iter().position(|t| t == term).unwrap();
            assert!((f64::from(idf[i]) - want_idf).abs() < 1e-6, "{term} idf {}", idf[i]);
            assert!((f64::from(out[i]) - want).abs() < 1e-6, "{term}: {}", out[i]);
        }
        // The six above and "free free" (a bigram of the fifth text).
        assert_eq!(out.iter().filter(|v| **v != 0.0).count(), 7);
        // Saved and loaded: the same values.
        let back: TextTransform = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        let mut again = vec![0.0; back.width()];
        back.apply(&["free free cash now call"], &mut again, back.width(), 0).unwrap();
        assert_eq!(out, again);
        assert_eq!(back.features().unwrap()[0].name, "sms:café");
    }

    /// `TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3))`, `transform(["ok now"])`:
    /// 12 non-zero n-grams, each 0.2886751345948129 (all with the same idf and count).
    #[test]
    fn char_wb_tfidf_matches_scikit_learn() {
        let c = config(TokenizerConfig::Ngrams(ngrams(Analyzer::CharWb, [2, 3])), TextOutput::Tfidf);
        let t = TextTransform::fit("sms", &sk_docs(), &c).unwrap();
        let mut out = vec![0.0; t.width()];
        t.apply(&["ok now"], &mut out, t.width(), 0).unwrap();
        let nz: Vec<f32> = out.iter().copied().filter(|v| *v != 0.0).collect();
        assert_eq!(nz.len(), 12);
        assert!(nz.iter().all(|v| (f64::from(*v) - 0.2886751345948129).abs() < 1e-6), "{nz:?}");
    }

    #[test]
    fn bad_ngram_settings_are_named() {
        let p = crate::PreprocessConfig {
            text: Some(config(
                TokenizerConfig::Ngrams(NgramTokenizer {
                    ngram_range: [2, 1],
                    max_df: crate::config::DocFrequency::Fraction(1.5),
                    ..NgramTokenizer::default()
                }),
                TextOutput::Sequence,
            )),
            ..Default::default()
        };
        let issues: Vec<String> = p.validate().iter().map(ToString::to_string).collect();
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(issues[0].starts_with("preprocess.text.tokenizer.ngram_range: must be [min, max]"), "{issues:?}");
        assert!(issues[1].starts_with("preprocess.text.tokenizer.max_df: a fraction"), "{issues:?}");
        assert!(issues[2].starts_with("preprocess.text.output: n-grams are counted"), "{issues:?}");
        let empty = TextTransform::fit(
            "sms",
            &sk_docs(),
            &config(
                TokenizerConfig::Ngrams(NgramTokenizer {
                    min_df: crate::config::DocFrequency::Count(9),
                    ..NgramTokenizer::default()
                }),
                TextOutput::Tfidf,
            ),
        );
        assert!(empty.unwrap_err().to_string().contains("min_df"));
    }
}
