"""PEFT's peak memory for one training step of a random 1B-class Llama, the anchor for
`burn-peft bench train --hidden 2048 --layers 16 --intermediate 5504 --rank 64 --steps 0`.
transformers builds the model from a config (no download); LoRA r on all seven projections,
adapters in f32 on a base in DTYPE, AdamW; one forward + backward + optimizer step on one row of
SEQ random tokens. Prints the peak RSS (one process per configuration, as burn-peft's table).
Usage: python peft_memory_anchor.py DTYPE(f32|bf16) SEQ ATTENTION(eager|sdpa) [rank] [checkpointing 0|1]"""
import resource, sys, time
import torch, transformers as T
from peft import LoraConfig, get_peft_model

dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[sys.argv[1]]
seq, attention = int(sys.argv[2]), sys.argv[3]
rank = int(sys.argv[4]) if len(sys.argv) > 4 else 64
checkpointing = len(sys.argv) > 5 and sys.argv[5] == "1"
torch.manual_seed(0)
cfg = T.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5504, num_hidden_layers=16,
                    num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=seq,
                    attn_implementation=attention)
with torch.device("cpu"):
    torch.set_default_dtype(dtype)
    model = T.LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# PEFT's default `autocast_adapter_dtype=True` keeps the adapters in f32 on a bf16 base.
model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, target_modules=targets))
if checkpointing:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
model.train()
ids = torch.randint(0, 32000, (1, seq))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.time()
loss = model(input_ids=ids, labels=ids).loss
loss.backward(); opt.step(); opt.zero_grad()
dt = time.time() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peft lora r{rank} base {sys.argv[1]} seq {seq} {attention} checkpointing {int(checkpointing)}: "
      f"peak RSS {peak:.0f} MiB (before the step {before:.0f}), {dt:.1f} s/step, threads {torch.get_num_threads()}",
      flush=True)
