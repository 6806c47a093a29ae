# TaskFlow API server + operator image: `taskflow api`, `taskflow operator`, `taskflow migrate`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir --prefix=/install ./client .

FROM python:3.11-slim
RUN useradd --uid 10001 --user-group --no-create-home taskflow
COPY --from=build /install /usr/local
USER 10001:10001
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 50051 8080 8081
ENTRYPOINT ["taskflow"]
CMD ["api"]
