#m!
config{"max_batch_size": 8}