# epidose: one image for the CDS Hooks service (default) and the retraining scheduler.
#   docker build -t epidose .
#   docker run -p 8080:8080 -v epidose-data:/data \
#     -e EPIDOSE_PUBLIC_BASE_URL=https://cds.example.org -e EPIDOSE_JWKS='{...}' epidose   # the service
#   docker run -v epidose-data:/data epidose epidose scheduler            # the retraining scheduler
# Configuration is by EPIDOSE_* environment variables only (docs/configuration.md).

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY fhir_mapping/ fhir_mapping/
COPY training/ training/
COPY plugin/ plugin/
COPY hooks/ hooks/
# The same install script CI runs on the plain machine (scripts/install.sh image).
RUN bash scripts/install.sh image /opt/epidose

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin epidose \
    && mkdir -p /data && chown epidose /data
COPY --from=build /opt/epidose /opt/epidose
ENV PATH=/opt/epidose/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EPIDOSE_DATA_DIR=/data
USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=180s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
# Inside a container the service must listen beyond loopback (outside, it defaults to 127.0.0.1); beyond
# loopback it starts only with authentication on and EPIDOSE_PUBLIC_BASE_URL set.
CMD ["epidose", "serve", "--host", "0.0.0.0", "--port", "8080"]
