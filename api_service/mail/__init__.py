"""The mail toolkit: RFC 5322/MIME parsing and building, below every domain.

Addresses (`addresses`), header folding and encoded words (`headers`), MIME building (`mime`), raw
header blocks and the one parsing policy (`parse`), address search in raw bytes (`address_match`) and
user-agent parsing (`useragent`). Pure functions on bytes and strings: this package imports no domain
package, no model and no database code (an import-linter layer enforces it), so any domain may use it.
"""
