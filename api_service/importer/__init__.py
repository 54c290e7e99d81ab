"""`postgate import`: move a Postmark account (or another Postgate's) into this Postgate."""
