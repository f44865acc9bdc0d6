"""Lightning's LR range test from the seed's init.ckpt, its curves, and the rules read off them."""
