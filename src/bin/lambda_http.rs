//! The http Lambda function; everything it does lives in `scorehook::lambda::http`.

#[tokio::main]
async fn main() -> Result<(), scorehook::lambda::Error> {
    scorehook::lambda::http::run().await
}
