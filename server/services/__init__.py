"""Operations shared by the REST API, the pages and the CLI: validate, write, audit."""
