//! The executor Lambda function; everything it does lives in `scorehook::lambda::executor`.

#[tokio::main]
async fn main() -> Result<(), scorehook::lambda::Error> {
    scorehook::lambda::executor::run().await
}
