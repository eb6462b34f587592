//! The sweeper Lambda function; everything it does lives in `scorehook::lambda::sweeper`.

#[tokio::main]
async fn main() -> Result<(), scorehook::lambda::Error> {
    scorehook::lambda::sweeper::run().await
}
