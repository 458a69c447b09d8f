# Attune application image: a non-editable install of the package, run as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY privacy ./privacy
COPY client_web ./client_web
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/attune attune
COPY --from=build /install /usr/local
USER attune
WORKDIR /var/lib/attune
ENV ATTUNE_HOST=0.0.0.0 \
    ATTUNE_PORT=8080 \
    ATTUNE_DATA_DIR=/var/lib/attune/data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["attune", "serve"]
