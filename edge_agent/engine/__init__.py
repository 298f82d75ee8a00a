"""Model engines: an interface, llama-cpp-python, a fixed-time fake, and the worker process."""
