async fn find(pool: &sqlx::PgPool, conn: &rusqlite::Connection, name: &str) -> anyhow::Result<()> {
    // ruleid: rust-sql-string-format
    sqlx::query(&format!("SELECT * FROM users WHERE name = '{}'", name)).execute(pool).await?;
    // ruleid: rust-sql-string-format
    conn.execute(&format!("DELETE FROM users WHERE name = '{name}'"), [])?;
    let statement = format!("SELECT id FROM users WHERE name = '{}'", name);
    // ruleid: rust-sql-string-format
    conn.prepare(&statement)?;
    // ok: rust-sql-string-format
    sqlx::query("SELECT * FROM users WHERE name = $1").bind(name).execute(pool).await?;
    // ok: rust-sql-string-format
    conn.execute("DELETE FROM users WHERE name = ?1", [name])?;
    // ok: rust-sql-string-format
    println!("{}", format!("looked up {}", name));
    Ok(())
}
