"""`make chaos`: faults under a steady stream of photos, and an account of every accepted job."""
