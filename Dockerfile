# Production image. The same image runs the web process (gunicorn, the default command),
# the Celery worker and Celery beat; see docker-compose.yml. All configuration comes from
# environment variables (config/settings.py), none is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_STATIC_ROOT=/app/staticfiles

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Every wheel is checked
# against the lock's hashes. requirements.lock holds the runtime dependencies only; the
# test tools are in requirements-dev.lock.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# The code stays owned by root: the app user can read it but not change it. Copied path by
# path so local files (.venv, db.sqlite3, .demo_password, .git) never enter the image.
COPY manage.py ./
COPY core/ core/
COPY accounts/ accounts/
COPY security/ security/
COPY customers/ customers/
COPY documents/ documents/
COPY consent/ consent/
COPY portal/ portal/
COPY config/ config/
COPY templates/ templates/
COPY static/ static/
RUN python -m compileall -q /app \
 && mkdir -p /app/staticfiles /app/media /var/lib/celery \
 && chown app:app /app/staticfiles /app/media /var/lib/celery

USER app

# Development settings only for this one step: collectstatic needs no database, Redis or
# secrets, and DJANGO_ENV=production would (rightly) refuse to start without them.
RUN DJANGO_ENV=development python manage.py collectstatic --noinput

EXPOSE 8000
# config/gunicorn.py masks customer-link tokens in gunicorn's logs.
CMD ["gunicorn", "--config", "config/gunicorn.py", "config.wsgi:application", "--bind", "0.0.0.0:8000"]
