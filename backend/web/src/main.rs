use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = riposte_web::cli::Cli::parse();
    match riposte_web::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
