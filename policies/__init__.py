"""Policy interface, action tokenizer, chunk execution, built-in policy and remote clients."""
